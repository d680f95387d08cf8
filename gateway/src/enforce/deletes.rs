//! DeleteObject and DeleteObjects.
//!
//! A delete that names a version, or any delete where the backend keeps one version per key,
//! destroys data and is decided against the version's lock. A delete without a version id in a
//! versioned bucket only adds a delete marker and is allowed. DeleteObjects is decided key by
//! key, to the end: the allowed keys go to the backend in a new Delete body, and every refused
//! key comes back as its own `<Error>` in the same 200 reply.

use bytes::Bytes;
use http::StatusCode;
use policy::lock::{ObjectRef, Profile, Versioning};
use policy::rules::{Action, Bypass, Decision, DenyReason, VersionSpec, VersionState};
use s3s::{Body, S3Response};

use crate::backend::door::{backend_headers, reply};
use crate::enforce::profile::Carried;
use crate::enforce::versioned;
use crate::enforce::{BucketFacts, Permit, refusal_of};
use crate::enforce::{Call, Gateway};
use crate::error::GatewayError;
use crate::s3::lock_headers;
use crate::s3::lock_xml::{self, DeleteKey};
use crate::s3::reply_with;

/// The index entry a delete of `version_id` touches: the version named, where the backend or
/// the gateway keeps versions; else the only version.
fn object_ref(
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    facts: &BucketFacts,
) -> Result<ObjectRef, GatewayError> {
    if versioned::serves_versions(facts) {
        return Ok(match version_id {
            Some(v) => versioned::parse_version(v)?.object(bucket, key),
            None => ObjectRef::new(bucket, key, None),
        });
    }
    Ok(match facts.profile {
        Profile::Native => ObjectRef::new(bucket, key, version_id),
        Profile::Gateway | Profile::BucketRetention => ObjectRef::new(bucket, key, None),
    })
}

fn spec(version_id: Option<&str>) -> VersionSpec {
    if version_id.is_some() {
        VersionSpec::Specific
    } else {
        VersionSpec::Current
    }
}

/// One key's `<Error>` in a DeleteObjects reply.
fn refusal(k: &DeleteKey, e: &GatewayError) -> String {
    let (code, message) = e.code_and_message();
    lock_xml::render_delete_error(k, code.as_str(), &message)
}

impl Gateway {
    /// The lock state a delete must respect; `Absent` when it destroys nothing. An allow that
    /// rests on the index alone is confirmed against the backend (`confirm_allow`).
    async fn delete_target(
        &self,
        bucket: &BucketFacts,
        object: &ObjectRef,
        action: Action,
        facts: &mut policy::rules::Facts,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), GatewayError> {
        let Action::Delete { version, .. } = action else {
            return Err(GatewayError::Internal(
                "a delete's target for another action".into(),
            ));
        };
        if version == VersionSpec::Current && bucket.versioning == Versioning::Enabled {
            facts.target = VersionState::Absent;
            return Ok(());
        }
        let inspected = self.inspect(object, false).await?;
        facts.target = inspected.state;
        self.confirm_allow(action, facts, object, inspected.from_index, now)
            .await
    }

    pub(crate) async fn delete_object(
        &self,
        mut call: Call<'_>,
    ) -> Result<S3Response<Body>, GatewayError> {
        let ObjectRef {
            bucket,
            key,
            version_id,
        } = call.object()?;
        let bypass = lock_headers::bypass(&call.headers)?;
        let bucket_facts = self.bucket_facts(&bucket).await?;
        let object = object_ref(&bucket, &key, version_id.as_deref(), &bucket_facts)?;
        let version = spec(version_id.as_deref());

        let _guard = self.locks.keys.lock(&bucket, &key).await;
        let mut facts = self.facts(&call, &bucket_facts);
        let action = Action::Delete { version, bypass };
        self.delete_target(&bucket_facts, &object, action, &mut facts, self.locks.now())
            .await?;
        let permit = self.decide(action, &facts).await?;

        if versioned::serves_versions(&bucket_facts) {
            let had_lock = matches!(facts.target, VersionState::Known(l) if !l.is_empty());
            return self
                .delete_version(
                    &bucket,
                    &key,
                    &object,
                    version_id.as_deref(),
                    had_lock,
                    permit,
                )
                .await
                .map(|done| done.unwrap_or_else(|resp| resp));
        }
        let mut headers = backend_headers(&call.headers);
        Carried::Bypass(bypass, call.user.permissions).onto(bucket_facts.profile, &mut headers);
        let resp = self.forward(&mut call, headers, permit).await?;
        if resp.status().is_success()
            && matches!(facts.target, VersionState::Known(l) if !l.is_empty())
        {
            self.locks.index.remove(&object)?;
        }
        Ok(reply(resp))
    }

    /// An allowed delete in a bucket whose versions the gateway serves: without a version id
    /// a new delete marker; with one, that version's (or marker's) own backend name removed.
    /// `Ok(Err(reply))` when the backend refused.
    async fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        object: &ObjectRef,
        version_id: Option<&str>,
        had_lock: bool,
        permit: Permit,
    ) -> Result<Result<S3Response<Body>, S3Response<Body>>, GatewayError> {
        let Some(v) = version_id else {
            return Ok(self
                .put_delete_marker(bucket, key, permit)
                .await?
                .map(|id| Self::deleted_reply(id.as_str(), true)));
        };
        let which = versioned::parse_version(v)?;
        let (target, _) = self.address(object);
        let resp = self
            .send_empty(http::Method::DELETE, &target, None, permit)
            .await?;
        if !resp.status().is_success() {
            return Ok(Err(reply(resp)));
        }
        if had_lock {
            self.locks.index.remove(object)?;
        }
        self.locks.index.forget_latest(bucket, key, which.id())?;
        Ok(Ok(Self::deleted_reply(
            which.id(),
            which.is_delete_marker(),
        )))
    }

    /// One key of a DeleteObjects batch: the policy's answer, or the refusal of a key the
    /// gateway will not act on or whose lock state cannot be established. Recorded, like
    /// every decision, in the one recorder.
    async fn decide_batch_key(
        &self,
        call: &Call<'_>,
        bucket_facts: &BucketFacts,
        k: &DeleteKey,
        bypass: Bypass,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(Decision, VersionState), GatewayError> {
        crate::s3::target::check_key(&k.key)?;
        if k.version_id.as_deref() == Some("") {
            return Err(GatewayError::InvalidArgument(
                "Version id cannot be the empty string".into(),
            ));
        }
        let object = object_ref(
            &call.target.bucket.clone().unwrap_or_default(),
            &k.key,
            k.version_id.as_deref(),
            bucket_facts,
        )?;
        let version = spec(k.version_id.as_deref());
        let mut facts = self.facts(call, bucket_facts);
        let action = Action::Delete { version, bypass };
        match self
            .delete_target(bucket_facts, &object, action, &mut facts, now)
            .await
        {
            Ok(()) => {}
            Err(e) => {
                tracing::warn!(key = %k.key, error = %e, "delete refused: lock state unknown");
                return Ok((
                    Decision::Deny {
                        reason: DenyReason::UnknownLockState,
                    },
                    VersionState::Unknown,
                ));
            }
        };
        let decision = self
            .decide_at(Action::Delete { version, bypass }, &facts, now)
            .await?;
        Ok((decision, facts.target))
    }

    pub(crate) async fn delete_objects(
        &self,
        mut call: Call<'_>,
    ) -> Result<S3Response<Body>, GatewayError> {
        let bucket = call.bucket()?.to_owned();
        let bypass = lock_headers::bypass(&call.headers)?;
        let body = lock_xml::read_capped(call.take_body(), lock_xml::DELETE_BODY_CAP).await?;
        let (keys, quiet) = lock_xml::parse_delete(&body)?;
        let bucket_facts = self.bucket_facts(&bucket).await?;
        if bypass == Bypass::Requested && !bucket_facts.lock.enabled {
            // One answer for the request, as on AWS, not one per key.
            return Err(GatewayError::Denied(DenyReason::BypassWithoutLock));
        }

        let _guards = self
            .locks
            .keys
            .lock_all(&bucket, keys.iter().map(|k| k.key.as_str()))
            .await;
        let now = self.locks.now();
        let versions = versioned::serves_versions(&bucket_facts);
        // Each allowed key, its version, whether it had a lock, and (where each key is its
        // own backend request) its own permit.
        let mut allowed: Vec<(DeleteKey, ObjectRef, bool, Option<Permit>)> =
            Vec::with_capacity(keys.len());
        // The batch reaches the backend on the permit of an allowed key, never without one.
        let mut permit: Option<Permit> = None;
        let mut refused = String::new();
        let action = Action::Delete {
            version: VersionSpec::Current,
            bypass,
        };
        for k in keys {
            // Each key is decided on its own, to the end of the batch, and recorded.
            let outcome = self
                .decide_batch_key(&call, &bucket_facts, &k, bypass, now)
                .await;
            let (decision, state) = match outcome {
                Ok((decision, state)) => (Ok(decision), state),
                Err(e) => (Err(e), VersionState::Unknown),
            };
            self.record(now, Some(&k.key), Some(action), refusal_of(&decision));
            match decision {
                Ok(allow @ Decision::Allow(_)) => {
                    let object =
                        object_ref(&bucket, &k.key, k.version_id.as_deref(), &bucket_facts)?;
                    let granted = Permit::granted(allow).map_err(GatewayError::Denied)?;
                    let own = if versions {
                        Some(granted)
                    } else {
                        if permit.is_none() {
                            permit = Some(granted);
                        }
                        None
                    };
                    let had_lock = matches!(state, VersionState::Known(l) if !l.is_empty());
                    allowed.push((k, object, had_lock, own));
                }
                Ok(Decision::Deny { reason }) => {
                    refused.push_str(&refusal(&k, &GatewayError::Denied(reason)));
                }
                Err(e) => refused.push_str(&refusal(&k, &e)),
            }
        }

        if versions {
            return self.delete_versions(&bucket, allowed, quiet, refused).await;
        }
        let Some(permit) = permit else {
            return Ok(reply_with(
                StatusCode::OK,
                Some(lock_xml::render_delete_result(&refused)),
            ));
        };
        let new_body = lock_xml::render_delete(
            &allowed.iter().map(|(k, ..)| k.clone()).collect::<Vec<_>>(),
            quiet,
        );
        let mut headers = backend_headers(&call.headers);
        Carried::Bypass(bypass, call.user.permissions).onto(bucket_facts.profile, &mut headers);
        call.set_body(Bytes::from(new_body), &mut headers);
        let resp = self.forward(&mut call, headers, permit).await?;
        if !resp.status().is_success() {
            return Ok(reply(resp));
        }
        for (_, object, had_lock, _) in &allowed {
            if *had_lock {
                self.locks.index.remove(object)?;
            }
        }
        if refused.is_empty() {
            return Ok(reply(resp));
        }
        // Merge: the backend's results, then the gateway's refusals.
        let (parts, incoming) = resp.into_parts();
        let backend_xml = lock_xml::read_capped(Body::from(incoming), lock_xml::DELETE_BODY_CAP)
            .await
            .map_err(|e| GatewayError::BackendUnavailable(format!("DeleteObjects reply: {e}")))?;
        let merged = lock_xml::merge_delete_result(&backend_xml, &refused);
        let mut out = reply_with(parts.status, Some(merged));
        for (name, value) in &parts.headers {
            if name != "content-length" && name != "transfer-encoding" && name != "connection" {
                out.headers.insert(name.clone(), value.clone());
            }
        }
        Ok(out)
    }

    /// The allowed keys of a DeleteObjects in a bucket whose versions the gateway serves, one
    /// backend request each (a delete marker made, or a version's name removed), and the reply
    /// the gateway writes for them, with the refusals.
    async fn delete_versions(
        &self,
        bucket: &str,
        allowed: Vec<(DeleteKey, ObjectRef, bool, Option<Permit>)>,
        quiet: bool,
        refused: String,
    ) -> Result<S3Response<Body>, GatewayError> {
        let mut elements = String::new();
        for (k, object, had_lock, permit) in allowed {
            let permit =
                permit.ok_or_else(|| GatewayError::Internal("a key without a permit".into()))?;
            let done = self
                .delete_version(
                    bucket,
                    &k.key,
                    &object,
                    k.version_id.as_deref(),
                    had_lock,
                    permit,
                )
                .await;
            match done {
                Ok(Ok(resp)) => {
                    if !quiet {
                        let marker = resp
                            .headers
                            .contains_key("x-amz-delete-marker")
                            .then(|| resp.headers.get("x-amz-version-id"))
                            .flatten()
                            .and_then(|v| v.to_str().ok());
                        elements.push_str(&lock_xml::render_deleted(&k, marker));
                    }
                }
                Ok(Err(resp)) => elements.push_str(&lock_xml::render_delete_error(
                    &k,
                    "InternalError",
                    &format!(
                        "the storage backend answered {}",
                        resp.status.unwrap_or_default()
                    ),
                )),
                Err(e) => elements.push_str(&refusal(&k, &e)),
            }
        }
        elements.push_str(&refused);
        Ok(reply_with(
            StatusCode::OK,
            Some(lock_xml::render_delete_result(&elements)),
        ))
    }
}
