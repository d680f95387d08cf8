//! Writes that create a version: PutObject, CopyObject, CreateMultipartUpload and
//! CompleteMultipartUpload.
//!
//! The lock a new version carries comes from its headers or the bucket's default (a copy never
//! inherits its source's lock). It is recorded as pending in the index *before* the request goes
//! to the backend and committed on the backend's success. Where the backend keeps one version
//! per key, the write replaces the current version, so it is decided like a delete of it.

use http::{HeaderMap, HeaderValue};
use policy::index::{LockRecord, LockSource};
use policy::lock::{BucketLock, ObjectLock, ObjectRef, Profile, Retention, Versioning};
use policy::rules::{Action, VersionState};
use s3s::{Body, S3Response};

use crate::backend::door::{backend_headers, reply};
use crate::enforce::profile::Carried;
use crate::enforce::versioned;
use crate::enforce::{Call, Gateway};
use crate::error::GatewayError;
use crate::s3::lock_headers;
use crate::s3::lock_xml;
use crate::s3::op::S3Op;
use crate::versions::layout::{self, Kind, VersionId};

/// Headers a copy with `x-amz-metadata-directive: REPLACE` takes from its source, so that
/// replacing the reserved lock metadata keeps everything else.
const CONTENT_HEADERS: [&str; 7] = [
    "content-type",
    "content-encoding",
    "content-disposition",
    "content-language",
    "cache-control",
    "expires",
    "x-amz-website-redirect-location",
];

impl Gateway {
    /// The lock a new version gets: its headers, else the bucket's default retention.
    fn new_version_lock(
        &self,
        headers: &HeaderMap,
        bucket: &BucketLock,
    ) -> Result<(ObjectLock, LockSource), GatewayError> {
        if let Some(lock) = lock_headers::requested(headers)? {
            return Ok((lock, LockSource::Header));
        }
        Ok(match bucket.default_retention {
            Some(d) if bucket.enabled => {
                // Milliseconds, as S3 writes dates: the index and the object metadata agree.
                let now = self.locks.now();
                let now =
                    chrono::DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
                let until = d.period.end_from(now).ok_or_else(|| {
                    GatewayError::InvalidArgument(
                        "default retention ends outside the calendar".into(),
                    )
                })?;
                let lock = ObjectLock {
                    retention: Some(Retention {
                        mode: d.mode,
                        until,
                    }),
                    ..ObjectLock::default()
                };
                (lock, LockSource::Default)
            }
            _ => (ObjectLock::default(), LockSource::Header),
        })
    }

    /// PutObject, CopyObject and CompleteMultipartUpload.
    pub(crate) async fn write_object(
        &self,
        mut call: Call<'_>,
    ) -> Result<S3Response<Body>, GatewayError> {
        let bucket = call.bucket()?.to_owned();
        let key = call.key()?.to_owned();
        let facts_of_bucket = self.bucket_facts(&bucket).await?;
        let bypass = lock_headers::bypass(&call.headers)?;
        let upload_id = call.upload_id.clone();

        let (lock, source) = match (&call.op, &upload_id) {
            // The lock fixed when the upload began: the same date the object's metadata carries,
            // so that the index and the store agree (a default period runs from the start of
            // the upload, not its completion).
            (S3Op::CompleteMultipartUpload, Some(id)) => match self.locks.index.upload(id)? {
                Some(r) => (r.lock, r.source),
                None => (ObjectLock::default(), LockSource::Header),
            },
            _ => self.new_version_lock(&call.headers, &facts_of_bucket.lock)?,
        };
        if call.op == S3Op::PutObject
            && !lock.is_empty()
            && !lock_headers::has_checksum(&call.headers)
        {
            return Err(lock_headers::missing_checksum());
        }

        let _guard = self.locks.keys.lock(&bucket, &key).await;
        // In a bucket whose versions the gateway serves, the write is a new version under a
        // name of its own: nothing is replaced, so nothing needs looking up first.
        let made = if versioned::serves_versions(&facts_of_bucket) {
            Some(match call.op {
                S3Op::CompleteMultipartUpload => self.aim_at_upload(&mut call)?,
                _ => {
                    let id = VersionId::new(self.locks.now(), Kind::Object);
                    call.target.key = Some(layout::version_name(&key, &id));
                    id
                }
            })
        } else {
            None
        };
        let object = ObjectRef::new(&bucket, &key, made.as_ref().map(VersionId::as_str));
        let mut facts = self.facts(&call, &facts_of_bucket);
        let action = Action::Write { lock, bypass };
        if facts_of_bucket.versioning != Versioning::Enabled {
            // The write replaces the version: decided like a delete of it.
            let inspected = self.inspect(&object, false).await?;
            facts.target = inspected.state;
            self.confirm_allow(
                action,
                &mut facts,
                &object,
                inspected.from_index,
                self.locks.now(),
            )
            .await?;
        }
        let permit = self.decide(action, &facts).await?;
        if made.is_some() {
            // Once the write is allowed: a caller that may not write learns nothing of the
            // key from a precondition's answer.
            self.check_write_conditions(&bucket, &key, &call.headers)
                .await?;
        }

        let mut headers = backend_headers(&call.headers);
        if made.is_some() {
            // Checked above against the current version; the store would check them against
            // the new version's own name.
            headers.remove(http::header::IF_NONE_MATCH);
            headers.remove(http::header::IF_MATCH);
        }
        let mut source_version = None;
        if call.op == S3Op::CopyObject {
            canonical_directive(&mut headers)?;
            let named = copy_source(&call.headers)?;
            source_version = self.aim_copy_source(&mut headers).await?;
            // The source version as the index and `address` know it.
            let source = match &source_version {
                Some(which) => which.object(&named.bucket, &named.key),
                None => named,
            };
            if facts_of_bucket.profile != Profile::Native {
                self.copy_keeps_source_metadata(&mut headers, &lock, &source)
                    .await?;
            }
        }
        // The lock a multipart upload carries was given when it began.
        if call.op != S3Op::CompleteMultipartUpload {
            Carried::NewVersion(lock, source).onto(facts_of_bucket.profile, &mut headers);
        }

        let retention_backend = facts_of_bucket.profile == Profile::BucketRetention;
        let pending = if lock.is_empty() {
            None
        } else {
            let now = self.locks.now();
            // The version's last modification comes after this moment: a floor counted from
            // here is never later than the backend's own.
            let since = retention_backend.then_some(now);
            let record =
                LockRecord::new(object.clone(), lock, source, now).with_backend_since(since);
            self.locks.begin(&record).await?;
            if let Some(since) = since {
                self.cover(&bucket, since, &lock, &permit).await;
            }
            Some(record)
        };
        // A transport error leaves the pending record: the outcome is unknown, so the lock
        // stays (too strict is allowed, missing is not).
        let backend_upload_id = call.query.get("uploadId").map(str::to_owned);
        let resp = self.forward(&mut call, headers, permit).await?;
        if resp.status().is_success() {
            let committed = committed_ref(&object, facts_of_bucket.profile, resp.headers());
            if pending.is_some() {
                self.locks.index.commit(&object, &committed)?;
            } else if matches!(facts.target, VersionState::Known(l) if !l.is_empty()) {
                // The replaced version's (expired) lock goes with it.
                self.locks.index.remove(&object)?;
            }
            if let Some(id) = &upload_id {
                self.locks.index.remove_upload(id)?;
            }
        } else if pending.is_some() {
            self.locks.index.abort(&object)?;
        }
        let Some(id) = made else {
            return Ok(reply(resp));
        };
        let success = resp.status().is_success();
        if success {
            self.note_written(&bucket, &key, &id)?;
        }
        let mut out = if call.op == S3Op::CompleteMultipartUpload {
            let ids = backend_upload_id.as_deref().zip(call.upload_id.as_deref());
            versioned::with_client_names(resp, &key, &id, ids).await?
        } else {
            reply(resp)
        };
        if success {
            out.headers.insert(
                "x-amz-version-id",
                HeaderValue::from_str(id.as_str())
                    .map_err(|_| GatewayError::Internal("version id header".into()))?,
            );
            if let Some(source) = source_version
                && let Ok(v) = HeaderValue::from_str(source.id())
            {
                out.headers.insert("x-amz-copy-source-version-id", v);
            }
        }
        Ok(out)
    }

    /// A copy in the gateway profile: the destination must not inherit the source's reserved
    /// metadata, and must carry its own lock. Both need `REPLACE`, so the source's other
    /// metadata is carried over explicitly.
    async fn copy_keeps_source_metadata(
        &self,
        headers: &mut HeaderMap,
        lock: &ObjectLock,
        source: &ObjectRef,
    ) -> Result<(), GatewayError> {
        let replace = headers
            .get("x-amz-metadata-directive")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"REPLACE"));
        if replace {
            return Ok(());
        }
        let resp = self.head_version(source).await?;
        if !resp.status().is_success() {
            // The backend will answer the copy with its own error.
            return Ok(());
        }
        let head = resp.headers().clone();
        let source_has_lock = head
            .keys()
            .any(|k| k.as_str().starts_with(lock_headers::META_PREFIX));
        if !source_has_lock && lock.is_empty() {
            return Ok(());
        }
        headers.insert(
            "x-amz-metadata-directive",
            HeaderValue::from_static("REPLACE"),
        );
        copy_metadata(&head, headers);
        Ok(())
    }

    /// CreateMultipartUpload: the lock is checked now, kept under the upload id, and applied
    /// when the upload completes.
    pub(crate) async fn start_upload(
        &self,
        mut call: Call<'_>,
    ) -> Result<S3Response<Body>, GatewayError> {
        let bucket = call.bucket()?.to_owned();
        let key = call.key()?.to_owned();
        let facts_of_bucket = self.bucket_facts(&bucket).await?;
        let (lock, source) = self.new_version_lock(&call.headers, &facts_of_bucket.lock)?;
        let facts = self.facts(&call, &facts_of_bucket);
        let permit = self.decide(Action::StartUpload { lock }, &facts).await?;
        let mut headers = backend_headers(&call.headers);
        Carried::NewVersion(lock, source).onto(facts_of_bucket.profile, &mut headers);
        // In a versioned bucket the upload is the version it will complete, under its own
        // name; its upload id carries the version.
        let made = versioned::serves_versions(&facts_of_bucket).then(|| {
            let id = VersionId::new(self.locks.now(), Kind::Object);
            call.target.key = Some(layout::version_name(&key, &id));
            id
        });
        let resp = self.forward(&mut call, headers, permit).await?;
        if (lock.is_empty() && made.is_none()) || !resp.status().is_success() {
            return Ok(reply(resp));
        }
        let (parts, incoming) = resp.into_parts();
        let body = lock_xml::read_capped(Body::from(incoming), lock_xml::POLICY_BODY_CAP)
            .await
            .map_err(|e| {
                GatewayError::BackendUnavailable(format!("CreateMultipartUpload reply: {e}"))
            })?;
        let backend_upload_id = lock_xml::upload_id(&body).ok_or_else(|| {
            GatewayError::Internal("CreateMultipartUpload reply without an UploadId".into())
        })?;
        let (upload_id, body) = match &made {
            Some(id) => {
                let client_id =
                    versioned::upload_id_for(&self.backend, &bucket, &key, id, &backend_upload_id);
                let body = versioned::client_names_in(
                    &body,
                    &key,
                    id,
                    Some((&backend_upload_id, &client_id)),
                );
                (client_id, bytes::Bytes::from(body))
            }
            None => (backend_upload_id, body),
        };
        if !lock.is_empty() {
            let record = LockRecord::new(
                ObjectRef::new(&bucket, &key, made.as_ref().map(VersionId::as_str)),
                lock,
                source,
                self.locks.now(),
            );
            self.locks.index.put_upload(&upload_id, &record)?;
        }
        let mut out = S3Response::with_status(Body::from(body), parts.status);
        out.headers = parts.headers;
        out.headers.remove("transfer-encoding");
        out.headers.remove("connection");
        // The body may have been rewritten: its length is its own.
        out.headers.remove("content-length");
        Ok(out)
    }
}

/// `x-amz-metadata-directive` in the one spelling every store reads: the gateway decides
/// whether a copy keeps its source's metadata (and with it a lock) on this value.
fn canonical_directive(headers: &mut HeaderMap) -> Result<(), GatewayError> {
    let Some(v) = headers.get("x-amz-metadata-directive") else {
        return Ok(());
    };
    let canonical = if v.as_bytes().eq_ignore_ascii_case(b"COPY") {
        "COPY"
    } else if v.as_bytes().eq_ignore_ascii_case(b"REPLACE") {
        "REPLACE"
    } else {
        return Err(GatewayError::InvalidArgument(
            "Unknown metadata directive.".into(),
        ));
    };
    headers.insert(
        "x-amz-metadata-directive",
        HeaderValue::from_static(canonical),
    );
    Ok(())
}

/// Content headers and user metadata of `from` (a HEAD reply) into `to`, except the reserved
/// lock metadata.
fn copy_metadata(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        let n = name.as_str();
        let user_meta = n.starts_with("x-amz-meta-") && !n.starts_with(lock_headers::META_PREFIX);
        if user_meta || CONTENT_HEADERS.contains(&n) {
            to.insert(name.clone(), value.clone());
        }
    }
}

/// The version a successful write created: in a versioned native bucket the one the backend
/// names, else the only one.
fn committed_ref(object: &ObjectRef, profile: Profile, headers: &HeaderMap) -> ObjectRef {
    let version = headers
        .get("x-amz-version-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| *v != "null");
    match (profile, version) {
        (Profile::Native, Some(v)) => ObjectRef {
            version_id: Some(v.to_owned()),
            ..object.clone()
        },
        _ => object.clone(),
    }
}

/// The object named by `x-amz-copy-source` (made canonical by `admission`).
fn copy_source(headers: &HeaderMap) -> Result<ObjectRef, GatewayError> {
    let raw = headers
        .get("x-amz-copy-source")
        .ok_or_else(|| GatewayError::InvalidArgument("x-amz-copy-source is missing".into()))?;
    let s = crate::s3::target::CopySource::parse(raw)?;
    Ok(ObjectRef {
        bucket: s.bucket,
        key: s.key,
        version_id: s.version_id,
    })
}
