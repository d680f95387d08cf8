//! An index in memory: for tests and for deployments that rebuild from the backend at start-up.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use super::{BucketRecord, IndexError, IndexResult, LockIndex, LockRecord, Scan, in_scan, key};
use crate::lock::ObjectRef;

#[derive(Default)]
struct Inner {
    committed: BTreeMap<Vec<u8>, LockRecord>,
    pending: BTreeMap<Vec<u8>, LockRecord>,
    by_date: BTreeMap<Vec<u8>, ()>,
    buckets: HashMap<String, BucketRecord>,
    uploads: HashMap<String, LockRecord>,
    latest: HashMap<Vec<u8>, String>,
}

impl Inner {
    fn set_committed(&mut self, record: LockRecord) {
        let k = key::version(&record.object);
        if let Some(old) = self.committed.get(&k)
            && let Some(r) = old.lock.retention
        {
            self.by_date.remove(&key::by_date(r.until, &old.object));
        }
        if let Some(r) = record.lock.retention {
            self.by_date
                .insert(key::by_date(r.until, &record.object), ());
        }
        self.committed.insert(k, record);
    }

    fn remove_committed(&mut self, object: &ObjectRef) {
        if let Some(old) = self.committed.remove(&key::version(object))
            && let Some(r) = old.lock.retention
        {
            self.by_date.remove(&key::by_date(r.until, object));
        }
    }
}

/// A `LockIndex` held in a `BTreeMap` behind one mutex.
#[derive(Default)]
pub struct MemoryIndex {
    inner: Mutex<Inner>,
}

impl MemoryIndex {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn inner(&self) -> IndexResult<MutexGuard<'_, Inner>> {
        self.inner
            .lock()
            .map_err(|_| IndexError::Storage("memory index poisoned".into()))
    }
}

impl LockIndex for MemoryIndex {
    fn get(&self, object: &ObjectRef) -> IndexResult<Option<LockRecord>> {
        let inner = self.inner()?;
        let k = key::version(object);
        let committed = inner.committed.get(&k).cloned();
        let pending = inner.pending.get(&k).cloned();
        Ok(match (committed, pending) {
            (Some(c), Some(p)) => Some(c.strictest(p)),
            (c, p) => c.or(p),
        })
    }

    fn begin(&self, record: &LockRecord) -> IndexResult<()> {
        let mut inner = self.inner()?;
        let k = key::version(&record.object);
        let merged = match inner.pending.remove(&k) {
            Some(old) => old.strictest(record.clone()),
            None => record.clone(),
        };
        inner.pending.insert(k, merged);
        Ok(())
    }

    fn commit(&self, pending: &ObjectRef, committed: &ObjectRef) -> IndexResult<()> {
        let mut inner = self.inner()?;
        if let Some(mut p) = inner.pending.remove(&key::version(pending)) {
            p.object = committed.clone();
            inner.set_committed(p);
        }
        Ok(())
    }

    fn abort(&self, object: &ObjectRef) -> IndexResult<()> {
        self.inner()?.pending.remove(&key::version(object));
        Ok(())
    }

    fn put(&self, record: &LockRecord) -> IndexResult<()> {
        self.inner()?.set_committed(record.clone());
        Ok(())
    }

    fn remove(&self, object: &ObjectRef) -> IndexResult<()> {
        self.inner()?.remove_committed(object);
        Ok(())
    }

    fn scan(&self, scan: &Scan<'_>) -> IndexResult<Vec<LockRecord>> {
        let inner = self.inner()?;
        let start = match (scan.after, scan.bucket) {
            (Some(after), _) => Bound::Excluded(key::version(after)),
            (None, Some(b)) => Bound::Included(key::prefix(b, scan.prefix)),
            (None, None) => Bound::Unbounded,
        };
        Ok(inner
            .committed
            .range((start, Bound::Unbounded))
            .map(|(_, r)| r)
            .take_while(|r| scan.bucket.is_none() || in_scan(scan, r))
            .filter(|r| in_scan(scan, r))
            .take(scan.limit)
            .cloned()
            .collect())
    }

    fn expiring_before(
        &self,
        before: DateTime<Utc>,
        after: Option<&LockRecord>,
        limit: usize,
    ) -> IndexResult<Vec<LockRecord>> {
        let inner = self.inner()?;
        let start = match after.and_then(|a| a.lock.retention.map(|r| (r, a))) {
            Some((r, a)) => Bound::Excluded(key::by_date(r.until, &a.object)),
            None => Bound::Unbounded,
        };
        let end = Bound::Excluded(key::date(before).to_vec());
        let mut out = Vec::new();
        for (k, ()) in inner.by_date.range((start, end)) {
            if out.len() == limit {
                break;
            }
            let record = inner
                .committed
                .get(&k[8..])
                .ok_or_else(|| IndexError::Corrupt("date entry without its record".into()))?;
            out.push(record.clone());
        }
        Ok(out)
    }

    fn pending(&self) -> IndexResult<Vec<LockRecord>> {
        Ok(self.inner()?.pending.values().cloned().collect())
    }

    fn holds_locks(&self, bucket: &str, now: DateTime<Utc>) -> IndexResult<bool> {
        let inner = self.inner()?;
        let p = key::prefix(bucket, "");
        Ok([&inner.committed, &inner.pending].iter().any(|tree| {
            tree.range(p.clone()..)
                .take_while(|(k, _)| k.starts_with(&p))
                .any(|(_, r)| r.lock.protects_at(now))
        }))
    }

    fn bucket(&self, name: &str) -> IndexResult<Option<BucketRecord>> {
        Ok(self.inner()?.buckets.get(name).cloned())
    }

    fn put_bucket(&self, name: &str, record: &BucketRecord) -> IndexResult<()> {
        self.inner()?
            .buckets
            .insert(name.to_owned(), record.clone());
        Ok(())
    }

    fn remove_bucket(&self, name: &str) -> IndexResult<()> {
        self.inner()?.buckets.remove(name);
        Ok(())
    }

    fn latest(&self, bucket: &str, key: &str) -> IndexResult<Option<String>> {
        Ok(self.inner()?.latest.get(&key::prefix(bucket, key)).cloned())
    }

    fn set_latest(&self, bucket: &str, key: &str, version: &str) -> IndexResult<()> {
        self.inner()?
            .latest
            .insert(key::prefix(bucket, key), version.to_owned());
        Ok(())
    }

    fn fill_latest(&self, bucket: &str, key: &str, version: &str) -> IndexResult<()> {
        self.inner()?
            .latest
            .entry(key::prefix(bucket, key))
            .or_insert_with(|| version.to_owned());
        Ok(())
    }

    fn clear_latest(&self) -> IndexResult<()> {
        self.inner()?.latest.clear();
        Ok(())
    }

    fn forget_latest(&self, bucket: &str, key: &str, version: &str) -> IndexResult<()> {
        let mut inner = self.inner()?;
        let k = key::prefix(bucket, key);
        if inner.latest.get(&k).is_some_and(|v| v == version) {
            inner.latest.remove(&k);
        }
        Ok(())
    }

    fn put_upload(&self, upload_id: &str, record: &LockRecord) -> IndexResult<()> {
        self.inner()?
            .uploads
            .insert(upload_id.to_owned(), record.clone());
        Ok(())
    }

    fn upload(&self, upload_id: &str) -> IndexResult<Option<LockRecord>> {
        Ok(self.inner()?.uploads.get(upload_id).cloned())
    }

    fn remove_upload(&self, upload_id: &str) -> IndexResult<()> {
        self.inner()?.uploads.remove(upload_id);
        Ok(())
    }

    fn clear_committed(&self) -> IndexResult<()> {
        let mut inner = self.inner()?;
        inner.committed.clear();
        inner.by_date.clear();
        Ok(())
    }

    fn len(&self) -> IndexResult<u64> {
        Ok(self.inner()?.committed.len() as u64)
    }

    fn flush(&self) -> IndexResult<()> {
        Ok(())
    }
}
