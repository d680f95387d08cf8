//! DeleteObject and DeleteObjects.
//!
//! A delete that names a version, or any delete where the backend keeps one version per key,
//! destroys data and is decided against the version's lock. A delete without a version id in a
//! versioned bucket only adds a delete marker and is allowed. DeleteObjects is decided key by
//! key, to the end: the allowed keys go to the backend in a new Delete body, and every refused
//! key comes back as its own `<Error>` in the same 200 reply.

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use md5::{Digest, Md5};
use policy::lock::{ObjectRef, Profile, Versioning};
use policy::rules::{Action, Decision, VersionSpec, VersionState};
use s3s::{Body, S3Response};

use crate::enforce::{BucketFacts, Permit};
use crate::error::GatewayError;
use crate::lock_headers;
use crate::lock_xml::{self, DeleteKey};
use crate::proxy::{Call, Gateway, backend_headers, reply, reply_with};

/// The index entry a delete of `version_id` touches: in the gateway profile the only version.
fn object_ref(bucket: &str, key: &str, version_id: Option<&str>, profile: Profile) -> ObjectRef {
    match profile {
        Profile::Native => ObjectRef::new(bucket, key, version_id),
        Profile::Gateway | Profile::BucketRetention => ObjectRef::new(bucket, key, None),
    }
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
    /// The lock state a delete must respect; `Absent` when it destroys nothing.
    async fn delete_target(
        &self,
        bucket: &BucketFacts,
        object: &ObjectRef,
        version: VersionSpec,
    ) -> Result<VersionState, GatewayError> {
        if version == VersionSpec::Current && bucket.versioning == Versioning::Enabled {
            return Ok(VersionState::Absent);
        }
        Ok(self.inspect(object, false).await?.state)
    }

    pub(crate) async fn delete_object(
        &self,
        mut call: Call<'_>,
    ) -> Result<S3Response<Body>, GatewayError> {
        let bucket = call.bucket()?.to_owned();
        let key = call.key()?.to_owned();
        let version_id = call.query.get("versionId").map(str::to_owned);
        let bypass = lock_headers::bypass(&call.headers)?;
        let bucket_facts = self.bucket_facts(&bucket).await?;
        let object = object_ref(&bucket, &key, version_id.as_deref(), bucket_facts.profile);
        let version = spec(version_id.as_deref());

        let _guard = self.locks.keys.lock(&bucket, &key).await;
        let mut facts = self.facts(&call, &bucket_facts);
        facts.target = self.delete_target(&bucket_facts, &object, version).await?;
        let permit = self
            .decide(Action::Delete { version, bypass }, &facts)
            .await?;

        let mut headers = backend_headers(&call.headers);
        if bucket_facts.profile != Profile::Native {
            headers.remove(lock_headers::BYPASS);
        }
        let resp = self.forward(&mut call, headers, permit).await?;
        if resp.status().is_success()
            && matches!(facts.target, VersionState::Known(l) if !l.is_empty())
        {
            self.locks.index.remove(&object)?;
        }
        Ok(reply(resp))
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

        let _guards = self
            .locks
            .keys
            .lock_all(&bucket, keys.iter().map(|k| k.key.as_str()))
            .await;
        let now = self.locks.now();
        let mut allowed: Vec<(DeleteKey, ObjectRef, bool)> = Vec::with_capacity(keys.len());
        // The batch reaches the backend on the permit of an allowed key, never without one.
        let mut permit: Option<Permit> = None;
        let mut refused = String::new();
        for k in keys {
            let object = object_ref(
                &bucket,
                &k.key,
                k.version_id.as_deref(),
                bucket_facts.profile,
            );
            let version = spec(k.version_id.as_deref());
            let mut facts = self.facts(&call, &bucket_facts);
            // A key whose state cannot be established is refused on its own; the batch goes on.
            let decision = match self.delete_target(&bucket_facts, &object, version).await {
                Ok(state) => {
                    facts.target = state;
                    match self
                        .decide_at(Action::Delete { version, bypass }, &facts, now)
                        .await
                    {
                        Ok(decision) => decision,
                        Err(e) => {
                            tracing::warn!(key = %k.key, error = %e, "delete refused");
                            refused.push_str(&refusal(&k, &e));
                            continue;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(key = %k.key, error = %e, "delete refused: lock state unknown");
                    Decision::Deny {
                        reason: policy::rules::DenyReason::UnknownLockState,
                    }
                }
            };
            match decision {
                Decision::Allow => {
                    if permit.is_none() {
                        permit = Some(Permit::granted(decision)?);
                    }
                    let had_lock = matches!(facts.target, VersionState::Known(l) if !l.is_empty());
                    allowed.push((k, object, had_lock));
                }
                Decision::Deny { reason } => {
                    tracing::info!(target: "wormgate::audit", key = %k.key, ?reason, "delete denied");
                    refused.push_str(&refusal(&k, &GatewayError::Denied(reason)));
                }
            }
        }

        let Some(permit) = permit else {
            return Ok(reply_with(
                StatusCode::OK,
                Some(lock_xml::render_delete_result(&refused)),
            ));
        };
        let new_body = lock_xml::render_delete(
            &allowed
                .iter()
                .map(|(k, _, _)| k.clone())
                .collect::<Vec<_>>(),
            quiet,
        );
        let mut headers = backend_headers(&call.headers);
        // The body changed: its checksums must be the new body's.
        let stale: Vec<_> = headers
            .keys()
            .filter(|k| {
                let n = k.as_str();
                n == "content-md5"
                    || n.starts_with("x-amz-checksum-")
                    || n == "x-amz-sdk-checksum-algorithm"
            })
            .cloned()
            .collect();
        for name in stale {
            headers.remove(name);
        }
        if bucket_facts.profile != Profile::Native {
            headers.remove(lock_headers::BYPASS);
        }
        let md5 =
            base64::engine::general_purpose::STANDARD.encode(Md5::digest(new_body.as_bytes()));
        headers.insert(
            "content-md5",
            HeaderValue::from_str(&md5).map_err(|_| GatewayError::Internal("md5 header".into()))?,
        );
        call.set_body(Bytes::from(new_body), &mut headers);
        let resp = self.forward(&mut call, headers, permit).await?;
        if !resp.status().is_success() {
            return Ok(reply(resp));
        }
        for (_, object, had_lock) in &allowed {
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
        let text = String::from_utf8_lossy(&backend_xml);
        let merged = match text.rfind("</DeleteResult>") {
            Some(at) => {
                let mut m = String::with_capacity(text.len() + refused.len());
                m.push_str(&text[..at]);
                m.push_str(&refused);
                m.push_str(&text[at..]);
                m
            }
            None => lock_xml::render_delete_result(&refused),
        };
        let mut out = reply_with(parts.status, Some(merged));
        for (name, value) in &parts.headers {
            if name != "content-length" && name != "transfer-encoding" && name != "connection" {
                out.headers.insert(name.clone(), value.clone());
            }
        }
        Ok(out)
    }
}
