//! PutObjectRetention, PutObjectLegalHold and their GETs.
//!
//! A change is decided against the version's current lock, recorded as pending in the index,
//! then applied: passed through to a native backend, or, where the backend has no per-object
//! lock, written as a new record of the version's journal on the backend
//! (`versions::journal`: nothing is rewritten, every gateway and `index rebuild` read it), and
//! committed on success.

use bytes::Bytes;
use policy::index::{LockRecord, LockSource};
use policy::lock::{LegalHold, ObjectLock, ObjectRef, Profile};
use policy::rules::{Action, DenyReason, VersionState};
use s3s::{Body, S3Response};

use crate::backend::door::{backend_headers, reply};
use crate::enforce::ok_empty;
use crate::enforce::profile::Carried;
use crate::enforce::versioned;
use crate::enforce::{Call, Gateway};
use crate::error::GatewayError;
use crate::s3::lock_headers;
use crate::s3::lock_xml;
use crate::s3::op::S3Op;
use crate::s3::reply_with;
use crate::versions::journal::{self, Change};

/// The request body that asks a native backend for `change`.
fn render(change: Change) -> String {
    match change {
        Change::Retention(Some(r)) => lock_xml::render_retention(&r),
        Change::Retention(None) => lock_xml::render_no_retention(),
        Change::LegalHold(hold) => lock_xml::render_legal_hold(&ObjectLock {
            legal_hold: hold,
            ..ObjectLock::default()
        }),
    }
}

impl Gateway {
    pub(crate) async fn put_retention(
        &self,
        mut call: Call<'_>,
    ) -> Result<S3Response<Body>, GatewayError> {
        let body = lock_xml::read_capped(call.take_body(), lock_xml::POLICY_BODY_CAP).await?;
        let retention = lock_xml::parse_retention(&body)?;
        let bypass = lock_headers::bypass(&call.headers)?;
        self.change_lock(
            call,
            Change::Retention(retention),
            Action::PutRetention { retention, bypass },
            LockSource::PutObjectRetention,
        )
        .await
    }

    pub(crate) async fn put_legal_hold(
        &self,
        mut call: Call<'_>,
    ) -> Result<S3Response<Body>, GatewayError> {
        let body = lock_xml::read_capped(call.take_body(), lock_xml::POLICY_BODY_CAP).await?;
        let hold = lock_xml::parse_legal_hold(&body)?;
        self.change_lock(
            call,
            Change::LegalHold(hold),
            Action::PutLegalHold { hold },
            LockSource::PutObjectLegalHold,
        )
        .await
    }

    async fn change_lock(
        &self,
        mut call: Call<'_>,
        change: Change,
        action: Action,
        source: LockSource,
    ) -> Result<S3Response<Body>, GatewayError> {
        let ObjectRef {
            bucket,
            key,
            version_id,
        } = call.object()?;
        let bucket_facts = self.bucket_facts(&bucket).await?;
        let native = bucket_facts.profile == Profile::Native;

        let _guard = self.locks.keys.lock(&bucket, &key).await;
        let versions = versioned::serves_versions(&bucket_facts);
        let object = if versions {
            // The version named, or the latest; a delete marker has no lock.
            let which = self.which(&bucket, &key, version_id.as_deref()).await?;
            versioned::not_a_marker(&which, version_id.is_some())?;
            which.object(&bucket, &key)
        } else {
            ObjectRef::new(
                &bucket,
                &key,
                if native { version_id.as_deref() } else { None },
            )
        };
        // The gateway profile needs the object's headers to rewrite them; a native request
        // without a version id needs the current version's id.
        let needs_head = !native || version_id.is_none();
        let inspected = self.inspect(&object, needs_head).await?;
        if inspected.delete_marker {
            return Err(GatewayError::MethodNotAllowed(
                "The specified method is not allowed against this resource.".into(),
            ));
        }
        let resolved = ObjectRef {
            version_id: if native {
                inspected.version_id.clone()
            } else {
                object.version_id.clone()
            },
            ..object
        };
        if versions && inspected.state == VersionState::Absent {
            return Err(if version_id.is_some() {
                GatewayError::NoSuchVersion
            } else {
                GatewayError::NoSuchKey
            });
        }
        let mut facts = self.facts(&call, &bucket_facts);
        facts.target = inspected.state;
        let permit = self.decide(action, &facts).await?;
        let VersionState::Known(current) = inspected.state else {
            return Err(GatewayError::Denied(DenyReason::UnknownLockState));
        };
        let lock = change.apply(current);
        if !native
            && lock == current
            && inspected.stored == Some(lock)
            && (inspected.hold_set || matches!(change, Change::Retention(_)))
        {
            // Nothing changes, and the store's own records say so already (a date asked
            // again, a hold set twice): nothing is written. What only the index holds (a
            // change whose record may not have landed) is written again.
            return Ok(ok_empty());
        }
        let hold_on = change == Change::LegalHold(LegalHold::On);
        if !native && inspected.journal_len >= journal::MAX_RECORDS && !hold_on {
            // Every decision on the version reads its whole journal: it stays short. A legal
            // hold is taken still: the owner's way to keep what is there.
            return Err(GatewayError::InvalidRequest(format!(
                "This version's lock was changed {} times; no more changes are taken.",
                journal::MAX_RECORDS
            )));
        }
        // Where the current lock holds something the index alone kept, so does the new one.
        // The record accounts for the journal it read and its own new record: a record
        // another gateway adds supersedes it, this one does not (`inspect`).
        let seen = u32::try_from(inspected.journal_len + usize::from(!native)).unwrap_or(u32::MAX);
        let record = LockRecord::new(resolved.clone(), lock, source, self.locks.now())
            .with_on_store(native || inspected.on_store)
            .with_journal_seen(seen);
        if native {
            self.locks.begin(&record).await?;
            // The body the backend gets is the one decided on, dates in UTC: never the
            // client's text, which the backend could read differently.
            let mut headers = backend_headers(&call.headers);
            if let Action::PutRetention { bypass, .. } = action {
                Carried::Bypass(bypass, call.user.permissions).onto(Profile::Native, &mut headers);
            }
            call.set_body(Bytes::from(render(change)), &mut headers);
            let resp = self.forward(&mut call, headers, permit).await?;
            return self.settle_lock_change(&resolved, resp, true);
        }
        // The backend has no per-object lock: the change is a new record of the version's
        // journal, decided on the newest record read.
        let since = if bucket_facts.profile == Profile::BucketRetention {
            self.backend_since(&resolved, inspected.head.as_ref())?
        } else {
            None
        };
        self.locks.begin(&record.with_backend_since(since)).await?;
        if let Some(since) = since {
            // The bucket's period raised to cover the new date, where allowed.
            self.cover(&bucket, since, &lock, &permit).await;
        }
        let entry = journal::Entry::new(
            self.locks.now(),
            change,
            inspected.journal_newest,
            u32::try_from(inspected.journal_len).unwrap_or(u32::MAX),
        );
        let resp = self.write_journal(&resolved, &entry, permit).await?;
        self.settle_lock_change(&resolved, resp, false)
    }

    /// Commits a lock change the backend took, forgets one it refused.
    fn settle_lock_change(
        &self,
        object: &ObjectRef,
        resp: http::Response<hyper::body::Incoming>,
        native: bool,
    ) -> Result<S3Response<Body>, GatewayError> {
        if resp.status().is_success() {
            self.locks.index.commit(object, object)?;
            Ok(if native { reply(resp) } else { ok_empty() })
        } else {
            self.locks.index.abort(object)?;
            tracing::warn!(bucket = %object.bucket, key = %object.key, status = %resp.status(), "lock change refused by the backend");
            Ok(reply(resp))
        }
    }

    /// Where the backend's bucket retention counts from for a version: its last modification
    /// as the backend shows it, or as the index recorded it, whichever is earlier.
    fn backend_since(
        &self,
        object: &ObjectRef,
        head: Option<&http::HeaderMap>,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, GatewayError> {
        let shown = head
            .and_then(|h| h.get(http::header::LAST_MODIFIED))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
            .map(|t| t.with_timezone(&chrono::Utc));
        let recorded = self.locks.index.get(object)?.and_then(|r| r.backend_since);
        Ok(match (shown, recorded) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    /// GetObjectRetention and GetObjectLegalHold: the backend's own answer on a native
    /// backend, the index's (or the object's metadata) otherwise.
    pub(crate) async fn get_object_lock(
        &self,
        mut call: Call<'_>,
    ) -> Result<S3Response<Body>, GatewayError> {
        let bucket = call.bucket()?.to_owned();
        let key = call.key()?.to_owned();
        let bucket_facts = self.bucket_facts(&bucket).await?;
        if bucket_facts.profile == Profile::Native {
            return self.pass_read(&mut call).await;
        }
        if !bucket_facts.lock.enabled {
            return Err(GatewayError::Denied(DenyReason::BucketLockNotEnabled));
        }
        let object = if versioned::serves_versions(&bucket_facts) {
            let which = self
                .which(&bucket, &key, call.version_id.as_deref())
                .await?;
            versioned::not_a_marker(&which, call.version_id.is_some())?;
            which.object(&bucket, &key)
        } else {
            ObjectRef::new(&bucket, &key, None)
        };
        // The store's records (the version's own and its journal), not the index alone: a
        // change made through another gateway shows at once.
        let inspected = self.inspect(&object, true).await?;
        let lock = match inspected.state {
            VersionState::Absent if call.version_id.is_some() && object.version_id.is_some() => {
                return Err(GatewayError::NoSuchVersion);
            }
            VersionState::Absent => return Err(GatewayError::NoSuchKey),
            VersionState::Unknown => {
                return Err(GatewayError::Denied(DenyReason::UnknownLockState));
            }
            VersionState::Known(lock) => lock,
        };
        let xml = match call.op {
            S3Op::GetObjectRetention => lock_xml::render_retention(
                &lock
                    .retention
                    .ok_or(GatewayError::NoSuchObjectLockConfiguration)?,
            ),
            _ if lock.legal_hold == LegalHold::On => lock_xml::render_legal_hold(&lock),
            // OFF for a version whose hold was set once (its metadata or journal says so), as
            // on AWS; a version that never had one has no legal hold configuration.
            _ if inspected.hold_set => lock_xml::render_legal_hold(&lock),
            _ => return Err(GatewayError::NoSuchObjectLockConfiguration),
        };
        Ok(reply_with(http::StatusCode::OK, Some(xml)))
    }
}
