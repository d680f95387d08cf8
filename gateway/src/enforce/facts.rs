//! Facts: the bucket's profile, lock and versioning, and one version's lock state, from the
//! index first and from the backend where the index does not know.

use http::{HeaderMap, StatusCode};
use policy::index::{LockRecord, LockSource};
use policy::lock::{BucketLock, ObjectLock, ObjectRef, Profile, Versioning};
use policy::rules::{BucketContents, Facts, VersionState};
use s3s::Body;

use crate::backend::ReadMethod;
use crate::error::GatewayError;
use crate::s3::lock_headers;
use crate::s3::lock_xml;
use crate::s3::target::Target;
use crate::versions::journal;
use crate::versions::layout::VersionId;
use crate::versions::listing::{BackendList, Lister};

use crate::enforce::locks::BucketSettings;
use crate::enforce::{Call, Gateway};

/// How long a reading of a bucket's lock configuration from the store stands before it is read
/// again (a small listing, and the newest record).
pub(crate) const BUCKET_RECHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// The lock state of the bucket as the request path needs it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BucketFacts {
    pub profile: Profile,
    pub lock: BucketLock,
    pub versioning: Versioning,
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
    /// The state is the index's alone (the backend was not asked).
    pub from_index: bool,
    /// The newest record of the version's journal, when the backend was asked.
    pub journal_newest: Option<VersionId>,
    /// A legal hold was set on the version once (the backend was asked).
    pub hold_set: bool,
    /// All of `state` is recorded on the backend (`LockRecord::on_store`).
    pub on_store: bool,
    /// How many records the version's journal holds (the backend was asked).
    pub journal_len: usize,
    /// The lock the backend's own records give, without the index's word (the backend was
    /// asked and could read them).
    pub stored: Option<ObjectLock>,
}

/// What the backend records of one version's lock.
pub(crate) struct BackendLock {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// `None` when something there cannot be read.
    pub lock: Option<ObjectLock>,
    pub journal_newest: Option<VersionId>,
    pub hold_set: bool,
    pub journal_len: usize,
}

impl Gateway {
    /// Facts for an action that depends only on the caller.
    pub(crate) fn plain_facts(&self, call: &Call<'_>) -> Result<Facts, GatewayError> {
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
            // A lock bucket is versioned, as on AWS: the gateway serves its versions
            // (`versioned`), as it does those of a bucket on which a client enabled
            // versioning. Other buckets keep one version per key. The backend's bucket
            // retention (`bucket-retention`) stands for object lock: always enabled, with the
            // default retention the gateway applies.
            Profile::Gateway | Profile::BucketRetention => {
                let settings = self.recorded_bucket(bucket).await?;
                let mut lock = settings.lock;
                lock.enabled |= profile == Profile::BucketRetention;
                Ok(BucketFacts {
                    profile,
                    lock,
                    versioning: if lock.enabled || settings.versioned {
                        Versioning::Enabled
                    } else {
                        Versioning::Unversioned
                    },
                })
            }
        }
    }

    /// A `gateway` or `bucket-retention` bucket's lock configuration and versioning: what the
    /// store records (`versioned::StoredBucket`), which every gateway writes on a change; for
    /// the lock, else the index's (buckets from before those records). Kept in memory and read
    /// again once older than `BUCKET_RECHECK`: a change made through another gateway (a bucket
    /// made a lock bucket, a new default retention, versioning enabled) applies here within
    /// that time. Where the store cannot be read, the last reading (or the index) stands for
    /// a lock bucket; for any other bucket the request is refused (503).
    async fn recorded_bucket(&self, bucket: &str) -> Result<BucketSettings, GatewayError> {
        let cached = self.locks.bucket_locks.get(bucket).map(|e| *e);
        if let Some((settings, at)) = cached
            && at.elapsed() < BUCKET_RECHECK
        {
            return Ok(settings);
        }
        let indexed = self.locks.index.bucket(bucket)?.map(|r| r.lock);
        let settings = match self.bucket_on_backend(bucket).await {
            Ok(stored) => {
                if let Some(lock) = stored.lock
                    && indexed != Some(lock)
                {
                    self.locks.update_bucket(bucket, |r| r.lock = lock)?;
                }
                BucketSettings {
                    lock: stored.lock.or(indexed).unwrap_or_default(),
                    versioned: stored.versioned,
                }
            }
            Err(e) => {
                let known =
                    cached
                        .map(|(settings, _)| settings)
                        .or(indexed.map(|lock| BucketSettings {
                            lock,
                            versioned: false,
                        }));
                match known {
                    Some(known) if known.lock.enabled => {
                        tracing::warn!(%bucket, error = %e, "bucket records unreadable; the last reading stands");
                        return Ok(known);
                    }
                    _ => return Err(e),
                }
            }
        };
        self.locks
            .bucket_locks
            .insert(bucket.to_owned(), (settings, std::time::Instant::now()));
        Ok(settings)
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

    /// The lock state of one version: the index, else the backend's records (whose answer is
    /// remembered in the index when it carries a lock). `always_head` forces the backend read
    /// (the caller needs the object's headers, or the newest record of its journal).
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
                from_index: true,
                journal_newest: None,
                hold_set: false,
                on_store: record.on_store,
                journal_len: 0,
                stored: None,
            });
        }
        let index_missed = !always_head;
        let read = self.backend_lock(object).await?;
        let status = read.status;
        let headers = read.headers;
        let delete_marker = headers
            .get("x-amz-delete-marker")
            .is_some_and(|v| v.as_bytes() == b"true");
        let version_id = headers
            .get("x-amz-version-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| *v != "null")
            .map(str::to_owned)
            .or_else(|| object.version_id.clone());
        let mut on_store = true;
        let state = match status {
            s if s.is_success() => match read.lock {
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
                    // The index may be stricter than the backend, never weaker: the stricter
                    // of both stands, unless the version's journal holds a change the index's
                    // record has not seen (made through another gateway, a lifted hold or a
                    // shortened GOVERNANCE date among them), which then supersedes it.
                    // A record kept in the index alone (`on_store` false) is never
                    // superseded.
                    let seen = u32::try_from(read.journal_len).unwrap_or(u32::MAX);
                    let superseded = known
                        .as_ref()
                        .is_some_and(|r| r.on_store && seen > r.journal_seen);
                    let known_on_store = known.as_ref().is_none_or(|r| r.on_store);
                    let known_lock = known.map(|r| r.lock);
                    let shown = lock;
                    let lock = match known_lock {
                        Some(k) if !superseded => k.strictest(lock),
                        _ => lock,
                    };
                    on_store = superseded || known_on_store || lock == shown;
                    if lock.is_empty() && superseded {
                        self.locks.index.remove(&resolved)?;
                    }
                    // Remember what the backend showed, unless the index already says it.
                    if !lock.is_empty() && (known_lock != Some(lock) || superseded) {
                        self.locks.index.put(
                            &LockRecord::new(resolved, lock, LockSource::Backend, self.locks.now())
                                .with_on_store(on_store)
                                .with_journal_seen(seen),
                        )?;
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
            from_index: false,
            journal_newest: read.journal_newest,
            hold_set: read.hold_set,
            on_store,
            journal_len: read.journal_len,
            stored: read.lock,
        })
    }

    /// What the backend records of one version's lock: its HEAD (the upload-time lock in its
    /// headers or reserved metadata) and, where the gateway keeps lock changes as records
    /// (`versions::journal`), its journal, applied to it. Both are asked at once: one round
    /// trip.
    pub(crate) async fn backend_lock(
        &self,
        object: &ObjectRef,
    ) -> Result<BackendLock, GatewayError> {
        let (head, journal) = if self.keeps_journals(&object.bucket).await? {
            let (head, journal) =
                tokio::join!(self.head_version(object), self.journal_entries(object));
            (head?, Some(journal?))
        } else {
            (self.head_version(object).await?, None)
        };
        let status = head.status();
        let headers = head.headers().clone();
        let base = status
            .is_success()
            .then(|| lock_headers::from_backend(&headers))
            .flatten();
        let meta_hold = headers.contains_key(lock_headers::META_LEGAL_HOLD);
        let journal_len = journal.as_ref().and_then(|j| j.as_ref().map(Vec::len));
        let (lock, journal_newest, hold_set) = match (base, journal) {
            (Some(base), Some(Some(entries))) => {
                let folded = journal::fold(base, &entries);
                (
                    Some(folded.lock),
                    folded.newest,
                    meta_hold || folded.hold_set,
                )
            }
            // A record the gateway cannot read: the lock is unknown.
            (Some(_), Some(None)) => (None, None, meta_hold),
            (base, _) => (base, None, meta_hold),
        };
        Ok(BackendLock {
            status,
            headers,
            lock,
            journal_newest,
            hold_set,
            journal_len: journal_len.unwrap_or(0),
        })
    }

    /// Whether lock changes on `bucket`'s versions are kept as journal records: on lock buckets
    /// of the profiles whose backend has no per-object lock. Asked of the bucket's facts (read
    /// from the store when not known), never of a cache another request may have emptied.
    pub(crate) async fn keeps_journals(&self, bucket: &str) -> Result<bool, GatewayError> {
        Ok(match self.locks.profile_of(bucket) {
            Profile::Native => false,
            Profile::BucketRetention => true,
            Profile::Gateway => self.bucket_facts(bucket).await?.lock.enabled,
        })
    }

    /// Every record of one version's journal; `None` when a name in it is not one the gateway
    /// writes (the lock is then unknown, never guessed).
    async fn journal_entries(
        &self,
        object: &ObjectRef,
    ) -> Result<Option<Vec<journal::Entry>>, GatewayError> {
        let prefix = journal::journal_of(&object.key, object.version_id.as_deref());
        let lister = self.lister(&object.bucket);
        let mut entries = Vec::new();
        let mut continuation = None;
        loop {
            let page = lister
                .list(&BackendList {
                    prefix: prefix.clone(),
                    // No record name holds a `/` after the prefix: a file-system store then
                    // reads one folder, not the bucket.
                    delimiter: Some("/".into()),
                    start_after: None,
                    continuation,
                    max_keys: 1000,
                })
                .await?;
            for item in &page.items {
                match journal::parse_entry(&prefix, item.name()) {
                    Some(entry) => entries.push(entry),
                    None => {
                        tracing::warn!(bucket = %object.bucket, name = %item.name(), "unreadable lock record");
                        return Ok(None);
                    }
                }
            }
            match page.next_continuation {
                Some(next) => continuation = Some(next),
                None => return Ok(Some(entries)),
            }
        }
    }

    /// Writes one record into a version's journal.
    pub(crate) async fn write_journal(
        &self,
        object: &ObjectRef,
        entry: &journal::Entry,
        permit: crate::backend::Permit,
    ) -> Result<http::Response<hyper::body::Incoming>, GatewayError> {
        let target = Target {
            bucket: Some(object.bucket.clone()),
            key: Some(journal::entry_name(
                &object.key,
                object.version_id.as_deref(),
                entry,
            )),
        };
        self.send_empty(http::Method::PUT, &target, None, permit)
            .await
    }

    /// Confirms against the backend an answer on the index's word alone. An allow of a
    /// destructive action is decided again on the version's own records on the backend (its
    /// HEAD and journal, asked at once), the stricter of both kept. A refusal stands on the
    /// index's word, except where lock changes are journaled: the journal is read then too (at
    /// most every `REFUSAL_RECHECK` per version, so that refused requests cost the store
    /// little), and a change the index's record has not seen (a hold lifted, a GOVERNANCE date
    /// shortened through another gateway) supersedes it. One backend round trip, only then; a
    /// native backend enforces its own locks.
    pub(crate) async fn confirm_allow(
        &self,
        action: policy::rules::Action,
        facts: &mut Facts,
        object: &ObjectRef,
        from_index: bool,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), GatewayError> {
        if !from_index || facts.profile == Profile::Native {
            return Ok(());
        }
        if self.decide_at(action, facts, now).await?.is_allowed() {
            facts.target = self.inspect(object, true).await?.state;
            return Ok(());
        }
        if !self.keeps_journals(&object.bucket).await? || !self.locks.recheck_refusal(object) {
            return Ok(());
        }
        // A refusal stands if the backend cannot be read: the index is the stricter word.
        match self.inspect(object, true).await {
            Ok(inspected) if !matches!(inspected.state, VersionState::Unknown) => {
                facts.target = inspected.state;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(bucket = %object.bucket, key = %object.key, error = %e, "journal not read; the index's refusal stands");
            }
        }
        Ok(())
    }

    /// HEAD of one version on the backend (the gateway's own read, for facts).
    pub(crate) async fn head_version(
        &self,
        object: &ObjectRef,
    ) -> Result<http::Response<hyper::body::Incoming>, GatewayError> {
        let (target, query) = self.address(object);
        self.read(
            ReadMethod::Head,
            &target,
            query.as_deref(),
            HeaderMap::new(),
        )
        .await
    }
}
