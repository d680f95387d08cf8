//! What enforcement keeps: the lock index (with its shared flushes), the buckets' profiles,
//! the rules' settings, the per-key locks, the trusted clock, and what the backends said of
//! their buckets.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use policy::index::{BucketRecord, LockIndex, LockRecord};
use policy::lock::{BucketLock, ObjectRef, Profile, Versioning};
use policy::rules::PolicyConfig;

use crate::backend::oss::worm::{BucketWorm, WormClient};
use crate::config::LockSettings;
use crate::enforce::clock::TrustedTime;
use crate::enforce::group_flush::GroupFlush;
use crate::enforce::key_locks::KeyLocks;
use crate::error::GatewayError;

/// Everything enforcement keeps: the index, the per-bucket profiles, the rules' settings, the
/// per-key locks, and what native backends said about their buckets.
pub struct Locks {
    pub(crate) index: Arc<dyn LockIndex>,
    /// Flushes of `index`, shared by concurrent writes.
    flusher: GroupFlush,
    settings: LockSettings,
    pub(crate) policy: PolicyConfig,
    pub(crate) keys: KeyLocks,
    pub(crate) native_buckets: DashMap<String, (BucketLock, Versioning)>,
    pub(crate) time: Arc<TrustedTime>,
    /// OSS's own API, for `bucket-retention` buckets.
    pub(crate) worm: Option<WormClient>,
    /// What OSS last said of each `bucket-retention` bucket's policy.
    pub(crate) worms: DashMap<String, BucketWorm>,
    /// The lock configuration of each `gateway` and `bucket-retention` bucket as last read
    /// (the store's newest record, else the index's), and when: read again from the store
    /// once older than `facts::BUCKET_RECHECK`; a change through this gateway replaces it.
    pub(crate) bucket_locks: DashMap<String, (BucketSettings, std::time::Instant)>,
    /// When a refusal from the index was last checked against each version's journal.
    refusals_checked: DashMap<ObjectRef, std::time::Instant>,
}

/// A `gateway` or `bucket-retention` bucket's settings, as the gateway last read them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BucketSettings {
    pub lock: BucketLock,
    /// A client enabled versioning on the bucket (a lock bucket is versioned regardless).
    pub versioned: bool,
}

/// How long a refusal checked against a version's journal stands before the next refusal of a
/// request on that version reads it again.
const REFUSAL_RECHECK: std::time::Duration = std::time::Duration::from_secs(5);
/// How many versions' last check are remembered.
const REFUSALS_KEPT: usize = 100_000;

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
            bucket_locks: DashMap::new(),
            refusals_checked: DashMap::new(),
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
        // The new record replaces whatever a reader cached, even one it read just before;
        // whether the bucket is versioned is not the index's to say (the store's record is).
        let versioned = self.bucket_locks.get(bucket).is_some_and(|e| e.0.versioned);
        let settings = BucketSettings {
            lock: record.lock,
            versioned,
        };
        self.bucket_locks
            .insert(bucket.to_owned(), (settings, std::time::Instant::now()));
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

    /// Remembers that a client just enabled versioning on a bucket (recorded on the store).
    pub(crate) fn note_versioned(&self, bucket: &str, lock: BucketLock) {
        let settings = BucketSettings {
            lock,
            versioned: true,
        };
        self.bucket_locks
            .insert(bucket.to_owned(), (settings, std::time::Instant::now()));
    }

    /// Forgets what a native backend said about a bucket (after a change through the gateway).
    pub(crate) fn forget_bucket(&self, bucket: &str) {
        self.native_buckets.remove(bucket);
        self.bucket_locks.remove(bucket);
    }

    /// Whether a refusal of a request on `object` from the index is to be checked against the
    /// store now: not if it was within `REFUSAL_RECHECK`. The memory is bounded: past
    /// `REFUSALS_KEPT` versions it starts again (a few more reads, never fewer refusals).
    pub(crate) fn recheck_refusal(&self, object: &ObjectRef) -> bool {
        let now = std::time::Instant::now();
        if let Some(at) = self.refusals_checked.get(object)
            && now.duration_since(*at) < REFUSAL_RECHECK
        {
            return false;
        }
        if self.refusals_checked.len() >= REFUSALS_KEPT {
            self.refusals_checked.clear();
        }
        self.refusals_checked.insert(object.clone(), now);
        true
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
