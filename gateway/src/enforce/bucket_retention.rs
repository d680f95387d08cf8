//! The `bucket-retention` profile: per-object locks over a backend that protects a whole bucket
//! for one period (Alibaba OSS BucketWorm).
//!
//! Per-object lock requests are stripped before forwarding; each wanted date is kept in the
//! index (and, at upload, in the object's reserved metadata) together with the moment the
//! backend's period counts from for that version. The gateway enforces every date; the backend
//! alone protects each version until its last modification plus the bucket's period (its
//! *floor*). When a wanted date outlives the floor, the gateway raises the bucket's period if
//! `auto_extend_up_to_days` allows it (only ever up, and only on a locked policy: OSS cannot
//! extend one still in progress); otherwise it accepts the date, enforces it itself, and the
//! audit reports the gap.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::StatusCode;
use policy::lock::{BackendRetention, LegalHold, ObjectLock};
use s3s::{Body, S3Response};

use crate::backend::Permit;
use crate::backend::oss::worm::{BucketWorm, MAX_PERIOD_DAYS, WormState};
use crate::enforce::Gateway;
use crate::error::GatewayError;
use crate::s3::lock_xml;

impl Gateway {
    /// Reads the bucket's policy from OSS, remembers it, and records it in the index (so that
    /// the offline audit knows the period too). `None`: the bucket has no policy.
    ///
    /// # Errors
    /// OSS cannot be reached or refuses; the index cannot be written.
    pub(crate) async fn refresh_worm(
        &self,
        bucket: &str,
    ) -> Result<Option<BucketWorm>, GatewayError> {
        let client = self.locks.worm.as_ref().ok_or_else(|| {
            GatewayError::Internal("bucket-retention profile without an OSS client".into())
        })?;
        let worm = client.get(bucket).await.map_err(|e| {
            GatewayError::BackendUnavailable(format!("GetBucketWorm {bucket}: {e}"))
        })?;
        match &worm {
            Some(w) => {
                self.locks.worms.insert(bucket.to_owned(), w.clone());
            }
            None => {
                self.locks.worms.remove(bucket);
            }
        }
        let backend = worm.as_ref().map(BucketWorm::retention);
        self.locks.update_bucket(bucket, |r| r.backend = backend)?;
        Ok(worm)
    }

    /// The bucket's policy as last read (reading it if it never was).
    pub(crate) async fn worm_of(&self, bucket: &str) -> Result<Option<BucketWorm>, GatewayError> {
        if let Some(w) = self.locks.worms.get(bucket) {
            return Ok(Some(w.clone()));
        }
        self.refresh_worm(bucket).await
    }

    /// Makes the backend protect a version last modified at `since` for as long as `lock`
    /// wants, where the configuration allows; where it does not, logs the gap (the audit
    /// reports it from the index).
    pub(crate) async fn cover(
        &self,
        bucket: &str,
        since: DateTime<Utc>,
        lock: &ObjectLock,
        permit: &Permit,
    ) {
        let now = self.locks.now();
        if !lock.protects_at(now) {
            return;
        }
        // A legal hold has no end: no period covers it.
        let until = match (lock.legal_hold, lock.retention) {
            (LegalHold::On, _) | (_, None) => None,
            (LegalHold::Off, Some(r)) => Some(r.until),
        };
        // One extension at a time per bucket; the policy is read again under the lock.
        let _guard = self.locks.keys.lock(bucket, "\u{0}bucket-worm").await;
        let worm = match self.worm_of(bucket).await {
            Ok(Some(w)) => w,
            Ok(None) => return self.gap(bucket, lock, "the bucket has no WORM policy"),
            Err(e) => return self.gap(bucket, lock, &e.to_string()),
        };
        let Some(until) = until else {
            return self.gap(bucket, lock, "a legal hold outlives any period");
        };
        let retention = worm.retention();
        if retention.floor(since, now).is_some_and(|f| f >= until) {
            return;
        }
        let needed = BackendRetention::days_needed(since, until);
        let Some(cap) = self.locks.settings().auto_extend_up_to_days else {
            return self.gap(bucket, lock, "auto_extend_up_to_days is not set");
        };
        let Ok(days) = u32::try_from(needed) else {
            return self.gap(bucket, lock, "the period needed is out of range");
        };
        if days > cap.min(MAX_PERIOD_DAYS) {
            return self.gap(
                bucket,
                lock,
                &format!("{days} days needed, auto_extend_up_to_days is {cap}"),
            );
        }
        if worm.state != WormState::Locked {
            return self.gap(bucket, lock, "OSS extends only a locked policy");
        }
        if days <= worm.period_days {
            // Covered by the period but not by the floor: the policy lapsed.
            return self.gap(bucket, lock, "the policy does not protect");
        }
        let Some(client) = self.locks.worm.as_ref() else {
            return self.gap(bucket, lock, "no OSS client");
        };
        match client.extend(bucket, &worm.id, days, permit).await {
            Ok(()) => {
                tracing::info!(target: "wormgate::audit", %bucket, from = worm.period_days, to = days, "bucket retention extended");
                if let Err(e) = self.refresh_worm(bucket).await {
                    // The extension is made; the next read will show it.
                    tracing::warn!(%bucket, error = %e, "cannot read the extended policy back");
                    let mut w = worm;
                    w.period_days = days;
                    self.locks.worms.insert(bucket.to_owned(), w);
                }
            }
            Err(e) => self.gap(bucket, lock, &format!("ExtendBucketWorm failed: {e}")),
        }
    }

    fn gap(&self, bucket: &str, lock: &ObjectLock, why: &str) {
        tracing::warn!(target: "wormgate::audit", %bucket, until = ?lock.retention.map(|r| r.until), hold = ?lock.legal_hold, why, "retention outlives the backend's bucket retention: the gateway alone enforces the rest");
    }
}

/// A backend reply of a `bucket-retention` bucket: OSS's 409 `FileImmutable` (its bucket
/// retention refused a delete or an overwrite) becomes S3's lock refusal; anything else is
/// passed on as it came.
///
/// # Errors
/// `BackendRetention` for `FileImmutable`.
pub(crate) async fn immutable_as_denied(
    resp: S3Response<Body>,
) -> Result<S3Response<Body>, GatewayError> {
    if resp.status != Some(StatusCode::CONFLICT) {
        return Ok(resp);
    }
    let S3Response {
        output,
        status,
        headers,
        extensions,
    } = resp;
    let body: Bytes = lock_xml::read_capped(output, lock_xml::POLICY_BODY_CAP)
        .await
        .map_err(|e| GatewayError::BackendUnavailable(format!("reading a 409 reply: {e}")))?;
    if lock_xml::error_code(&body).as_deref() == Some("FileImmutable") {
        return Err(GatewayError::BackendRetention);
    }
    let mut out = S3Response::with_status(Body::from(body), status.unwrap_or(StatusCode::CONFLICT));
    out.headers = headers;
    out.headers.remove(http::header::CONTENT_LENGTH);
    out.extensions = extensions;
    Ok(out)
}
