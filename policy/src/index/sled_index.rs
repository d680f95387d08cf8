//! The default index: a sled database in one directory.
//!
//! Trees: `committed` and `pending` (version key → record), `by_date` (retain-until ++ version
//! key → nothing), `buckets`, `uploads`, `latest` (a key's latest version, a cache for reads),
//! and `meta` holding the format version.
//!
//! No sled transactions. A transaction takes a lock over the whole database that `flush`
//! holds shared for as long as the disk takes; once one transaction has run, every later read
//! and write waits for each flush in progress, on whatever thread it runs, the runtime's
//! included. Each change is instead a sequence of single-key writes, ordered so that a crash
//! between any two of them (sled recovers its log in order) leaves a state at least as strict:
//! - a record's new date entry is written before the record, its old one removed after, so a
//!   crash leaves an extra date entry, which `expiring_before` skips, never a record without;
//! - a committed record is written before its pending record is removed: a crash leaves both,
//!   and `get` returns the stricter;
//! - readers look at `pending` before `committed`, so a commit running beside them is seen in
//!   one tree or the other, never in neither.
//!
//! With `with_records_in_memory`, every committed record is also kept in memory (all of it but
//! the version's name, which is the map's key), and lookups read `committed` there: a sled
//! lookup in a large tree takes p99 several times its median (its page cache accounts accesses
//! in batches), a hash map lookup does not. Each change to a version's committed record updates
//! the copy after the tree, under a lock striped by version key, so the two end every change
//! alike; `pending` is read from sled still, so an index sled can no longer read fails closed
//! as before.

use std::hash::{BuildHasher, RandomState};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use sled::Tree;

use super::{
    BucketRecord, FORMAT_VERSION, IndexError, IndexResult, LockIndex, LockRecord, Scan,
    decode_bucket, decode_record, encode, in_scan, key,
};
use crate::lock::ObjectRef;

/// The page cache sled keeps in memory unless told otherwise (`open_with_cache`).
pub const DEFAULT_CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// A `LockIndex` on disk.
pub struct SledIndex {
    db: sled::Db,
    committed: Tree,
    pending: Tree,
    by_date: Tree,
    buckets: Tree,
    uploads: Tree,
    /// A key's latest version, as last written or listed (`LockIndex::latest`).
    latest: Tree,
    memory: Option<Records>,
}

/// The committed records in memory (`with_records_in_memory`), by version key.
struct Records {
    by_key: DashMap<Box<[u8]>, Held>,
    /// Writers of one version key hold the same stripe across the tree's write and the copy's.
    stripes: Vec<Mutex<()>>,
    hasher: RandomState,
}

impl Records {
    const STRIPES: usize = 64;

    fn stripe(&self, k: &[u8]) -> MutexGuard<'_, ()> {
        #[allow(clippy::cast_possible_truncation)]
        let i = (self.hasher.hash_one(k) % Self::STRIPES as u64) as usize;
        // A writer that panicked left nothing half-done under the stripe that a lock guards.
        self.stripes[i]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A committed record without its version's name, which the map's key gives.
#[derive(Clone)]
struct Held {
    lock: crate::lock::ObjectLock,
    source: super::LockSource,
    written_at: DateTime<Utc>,
    backend_since: Option<DateTime<Utc>>,
    on_store: bool,
    journal_seen: u32,
}

impl From<LockRecord> for Held {
    fn from(r: LockRecord) -> Self {
        Self {
            lock: r.lock,
            source: r.source,
            written_at: r.written_at,
            backend_since: r.backend_since,
            on_store: r.on_store,
            journal_seen: r.journal_seen,
        }
    }
}

impl Held {
    /// The record again, named `object` (the version whose key found it).
    fn record(self, object: &ObjectRef) -> LockRecord {
        LockRecord::new(object.clone(), self.lock, self.source, self.written_at)
            .with_backend_since(self.backend_since)
            .with_on_store(self.on_store)
            .with_journal_seen(self.journal_seen)
    }
}

fn storage(e: sled::Error) -> IndexError {
    IndexError::Storage(e.to_string())
}

impl SledIndex {
    /// Opens (or creates) the index in `dir`.
    ///
    /// # Errors
    /// The directory cannot be opened, or holds an index of another format.
    pub fn open(dir: &Path) -> IndexResult<Self> {
        // sled's own default page cache is 1 GiB; the gateway's memory must stay small.
        Self::open_with_cache(dir, DEFAULT_CACHE_BYTES)
    }

    /// Opens the index with a page cache of `cache_bytes`. Lookups that miss the cache read
    /// and decode a page from the file: a cache that holds the whole index makes every lookup
    /// a memory access, at the cost of that much memory.
    ///
    /// # Errors
    /// The directory cannot be opened, or holds an index of another format.
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> IndexResult<Self> {
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(cache_bytes)
            .open()
            .map_err(storage)?;
        match db.get("format").map_err(storage)? {
            Some(v) if v.as_ref() == [FORMAT_VERSION] => {}
            Some(v) => {
                return Err(IndexError::Format {
                    found: v.first().copied().unwrap_or_default(),
                });
            }
            None => {
                db.insert("format", &[FORMAT_VERSION]).map_err(storage)?;
            }
        }
        let tree = |name: &str| db.open_tree(name).map_err(storage);
        Ok(Self {
            committed: tree("committed")?,
            pending: tree("pending")?,
            by_date: tree("by_date")?,
            buckets: tree("buckets")?,
            uploads: tree("uploads")?,
            latest: tree("latest")?,
            db,
            memory: None,
        })
    }

    /// Keeps every committed record in memory too, read once from disk here: lookups no
    /// longer depend on the page cache, at about 250 bytes of memory per record (the version
    /// key and the lock, in a hash map).
    ///
    /// # Errors
    /// A record cannot be read.
    pub fn with_records_in_memory(mut self) -> IndexResult<Self> {
        let records = Records {
            by_key: DashMap::new(),
            stripes: (0..Records::STRIPES).map(|_| Mutex::new(())).collect(),
            hasher: RandomState::new(),
        };
        for entry in &self.committed {
            let (k, v) = entry.map_err(storage)?;
            records
                .by_key
                .insert(k.as_ref().into(), Held::from(decode_record(&v)?));
        }
        self.memory = Some(records);
        Ok(self)
    }

    /// Bytes the database occupies on disk.
    ///
    /// # Errors
    /// sled cannot tell.
    pub fn size_on_disk(&self) -> IndexResult<u64> {
        self.db.size_on_disk().map_err(storage)
    }

    /// Writes the committed record of `object`, or removes it with `None`, and its date entry
    /// (in the order the module doc gives).
    fn replace_committed(
        &self,
        object: &ObjectRef,
        record: Option<&LockRecord>,
    ) -> IndexResult<()> {
        let k = key::version(object);
        let _stripe = self.memory.as_ref().map(|m| m.stripe(&k));
        let new_date = record
            .and_then(|r| r.lock.retention)
            .map(|r| key::by_date(r.until, object));
        if let Some(d) = &new_date {
            self.by_date
                .insert(d.as_slice(), &[][..])
                .map_err(storage)?;
        }
        let old = match record {
            Some(r) => self.committed.insert(&k, encode(r)?),
            None => self.committed.remove(&k),
        }
        .map_err(storage)?;
        if let Some(m) = &self.memory {
            match record {
                Some(r) => {
                    m.by_key.insert(k.into_boxed_slice(), Held::from(r.clone()));
                }
                None => {
                    m.by_key.remove(k.as_slice());
                }
            }
        }
        if let Some(r) = old
            .map(|o| decode_record(&o))
            .transpose()?
            .and_then(|o| o.lock.retention)
        {
            let old_date = key::by_date(r.until, object);
            if new_date.as_ref() != Some(&old_date) {
                self.by_date.remove(old_date).map_err(storage)?;
            }
        }
        Ok(())
    }

    fn durable(&self) -> IndexResult<()> {
        self.db.flush().map(|_| ()).map_err(storage)
    }
}

impl LockIndex for SledIndex {
    fn get(&self, object: &ObjectRef) -> IndexResult<Option<LockRecord>> {
        let k = key::version(object);
        let read = |tree: &Tree| {
            tree.get(&k)
                .map_err(storage)?
                .map(|v| decode_record(&v))
                .transpose()
        };
        let pending = read(&self.pending)?;
        let committed = match &self.memory {
            Some(m) => m
                .by_key
                .get(k.as_slice())
                .map(|held| held.value().clone().record(object)),
            None => read(&self.committed)?,
        };
        Ok(match (committed, pending) {
            (Some(c), Some(p)) => Some(c.strictest(p)),
            (c, p) => c.or(p),
        })
    }

    fn begin(&self, record: &LockRecord) -> IndexResult<()> {
        let k = key::version(&record.object);
        let mut current = self.pending.get(&k).map_err(storage)?;
        loop {
            let merged = match &current {
                Some(old) => decode_record(old)?.strictest(record.clone()),
                None => record.clone(),
            };
            let swapped = self
                .pending
                .compare_and_swap(&k, current.as_ref(), Some(encode(&merged)?))
                .map_err(storage)?;
            match swapped {
                Ok(()) => return Ok(()),
                Err(changed) => current = changed.current,
            }
        }
    }

    fn commit(&self, pending_ref: &ObjectRef, committed_ref: &ObjectRef) -> IndexResult<()> {
        let k = key::version(pending_ref);
        let Some(bytes) = self.pending.get(&k).map_err(storage)? else {
            return Ok(());
        };
        let mut record = decode_record(&bytes)?;
        record.object = committed_ref.clone();
        self.replace_committed(committed_ref, Some(&record))?;
        // Only the record just committed goes: one merged in meanwhile stays pending.
        self.pending
            .compare_and_swap(&k, Some(&bytes), None::<&[u8]>)
            .map_err(storage)?
            .ok();
        Ok(())
    }

    fn abort(&self, object: &ObjectRef) -> IndexResult<()> {
        self.pending
            .remove(key::version(object))
            .map(|_| ())
            .map_err(storage)
    }

    fn put(&self, record: &LockRecord) -> IndexResult<()> {
        self.replace_committed(&record.object, Some(record))
    }

    fn remove(&self, object: &ObjectRef) -> IndexResult<()> {
        self.replace_committed(object, None)?;
        self.durable()
    }

    fn scan(&self, scan: &Scan<'_>) -> IndexResult<Vec<LockRecord>> {
        let iter = match (scan.after, scan.bucket) {
            (Some(after), _) => {
                let mut start = key::version(after);
                start.push(0);
                self.committed.range(start..)
            }
            (None, Some(b)) => self.committed.range(key::prefix(b, scan.prefix)..),
            (None, None) => self.committed.iter(),
        };
        let mut out = Vec::new();
        for item in iter {
            if out.len() == scan.limit {
                break;
            }
            let (_, v) = item.map_err(storage)?;
            let record = decode_record(&v)?;
            if in_scan(scan, &record) {
                out.push(record);
            } else if scan.bucket.is_some() {
                break;
            }
        }
        Ok(out)
    }

    fn expiring_before(
        &self,
        before: DateTime<Utc>,
        after: Option<&LockRecord>,
        limit: usize,
    ) -> IndexResult<Vec<LockRecord>> {
        let end = key::date(before).to_vec();
        let iter = match after.and_then(|a| a.lock.retention.map(|r| (r, a))) {
            Some((r, a)) => {
                let mut start = key::by_date(r.until, &a.object);
                start.push(0);
                self.by_date.range(start..end)
            }
            None => self.by_date.range(..end),
        };
        let mut out = Vec::new();
        for item in iter {
            if out.len() == limit {
                break;
            }
            let (k, _) = item.map_err(storage)?;
            // An entry left by a crash between two writes (module doc) names a record that is
            // gone or now carries another date: skipped.
            let Some(v) = self.committed.get(&k[8..]).map_err(storage)? else {
                continue;
            };
            let record = decode_record(&v)?;
            if record
                .lock
                .retention
                .map(|r| key::date(r.until)[..] == k[..8])
                == Some(true)
            {
                out.push(record);
            }
        }
        Ok(out)
    }

    fn pending(&self) -> IndexResult<Vec<LockRecord>> {
        self.pending
            .iter()
            .map(|item| item.map_err(storage).and_then(|(_, v)| decode_record(&v)))
            .collect()
    }

    fn holds_locks(&self, bucket: &str, now: DateTime<Utc>) -> IndexResult<bool> {
        let p = key::prefix(bucket, "");
        for tree in [&self.pending, &self.committed] {
            for item in tree.scan_prefix(&p) {
                let (_, v) = item.map_err(storage)?;
                if decode_record(&v)?.lock.protects_at(now) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    fn bucket(&self, name: &str) -> IndexResult<Option<BucketRecord>> {
        self.buckets
            .get(name)
            .map_err(storage)?
            .map(|v| decode_bucket(&v))
            .transpose()
    }

    fn put_bucket(&self, name: &str, record: &BucketRecord) -> IndexResult<()> {
        self.buckets
            .insert(name, encode(record)?)
            .map_err(storage)?;
        self.durable()
    }

    fn remove_bucket(&self, name: &str) -> IndexResult<()> {
        self.buckets.remove(name).map_err(storage)?;
        self.durable()
    }

    fn latest(&self, bucket: &str, key: &str) -> IndexResult<Option<String>> {
        let got = self.latest.get(key::prefix(bucket, key)).map_err(storage)?;
        got.map(|v| String::from_utf8(v.to_vec()).map_err(|e| IndexError::Corrupt(e.to_string())))
            .transpose()
    }

    fn set_latest(&self, bucket: &str, key: &str, version: &str) -> IndexResult<()> {
        self.latest
            .insert(key::prefix(bucket, key), version.as_bytes())
            .map_err(storage)?;
        Ok(())
    }

    fn fill_latest(&self, bucket: &str, key: &str, version: &str) -> IndexResult<()> {
        // Only where nothing is known: a write's latest stands.
        let _ = self
            .latest
            .compare_and_swap(
                key::prefix(bucket, key),
                None::<&[u8]>,
                Some(version.as_bytes()),
            )
            .map_err(storage)?;
        Ok(())
    }

    fn clear_latest(&self) -> IndexResult<()> {
        self.latest.clear().map_err(storage)
    }

    fn forget_latest(&self, bucket: &str, key: &str, version: &str) -> IndexResult<()> {
        let _ = self
            .latest
            .compare_and_swap(
                key::prefix(bucket, key),
                Some(version.as_bytes()),
                None::<&[u8]>,
            )
            .map_err(storage)?;
        Ok(())
    }

    fn put_upload(&self, upload_id: &str, record: &LockRecord) -> IndexResult<()> {
        self.uploads
            .insert(upload_id, encode(record)?)
            .map_err(storage)?;
        self.durable()
    }

    fn upload(&self, upload_id: &str) -> IndexResult<Option<LockRecord>> {
        self.uploads
            .get(upload_id)
            .map_err(storage)?
            .map(|v| decode_record(&v))
            .transpose()
    }

    fn remove_upload(&self, upload_id: &str) -> IndexResult<()> {
        self.uploads.remove(upload_id).map_err(storage)?;
        Ok(())
    }

    fn clear_committed(&self) -> IndexResult<()> {
        let _stripes: Vec<_> = self
            .memory
            .iter()
            .flat_map(|m| {
                m.stripes
                    .iter()
                    .map(|s| s.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
            })
            .collect();
        self.committed.clear().map_err(storage)?;
        if let Some(m) = &self.memory {
            m.by_key.clear();
        }
        self.by_date.clear().map_err(storage)?;
        self.durable()
    }

    fn len(&self) -> IndexResult<u64> {
        Ok(match &self.memory {
            Some(m) => m.by_key.len(),
            None => self.committed.len(),
        } as u64)
    }

    fn flush(&self) -> IndexResult<()> {
        self.durable()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::index::LockSource;
    use crate::lock::{ObjectLock, Retention, RetentionMode};

    fn record(key: &str, days: i64) -> LockRecord {
        let t0: DateTime<Utc> = "2030-01-01T00:00:00Z".parse().expect("date");
        let lock = ObjectLock {
            retention: Some(Retention {
                mode: RetentionMode::Compliance,
                until: t0 + TimeDelta::days(days),
            }),
            ..ObjectLock::default()
        };
        LockRecord::new(ObjectRef::new("b", key, None), lock, LockSource::Header, t0)
    }

    #[test]
    fn date_entries_a_crash_left_behind_are_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let index = SledIndex::open(dir.path()).expect("open");
        let kept = record("kept", 3);
        index.put(&kept).expect("put");
        // What a crash between the single-key writes can leave: the date entry of a record
        // since given another date, and one whose record was never written.
        let old_date = record("kept", 1).lock.retention.expect("retention").until;
        let ghost = record("ghost", 2);
        let ghost_date = ghost.lock.retention.expect("retention").until;
        for entry in [
            key::by_date(old_date, &kept.object),
            key::by_date(ghost_date, &ghost.object),
        ] {
            index.by_date.insert(entry, &[][..]).expect("insert");
        }
        let until = kept.lock.retention.expect("retention").until;
        let found = index
            .expiring_before(until + TimeDelta::days(1), None, 10)
            .expect("dates");
        assert_eq!(found, std::slice::from_ref(&kept));
        // A page of one still finds the record behind the leftovers.
        assert_eq!(
            index
                .expiring_before(until + TimeDelta::days(1), None, 1)
                .expect("dates"),
            [kept]
        );
    }

    #[test]
    fn concurrent_begins_of_one_version_keep_the_strictest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let index = SledIndex::open(dir.path()).expect("open");
        std::thread::scope(|s| {
            for t in 0..4 {
                let index = &index;
                s.spawn(move || {
                    for days in 0..50 {
                        index.begin(&record("k", days * 4 + t)).expect("begin");
                    }
                });
            }
        });
        let got = index
            .get(&ObjectRef::new("b", "k", None))
            .expect("get")
            .expect("record");
        assert_eq!(got.lock, record("k", 199).lock);
    }

    #[test]
    fn records_in_memory_end_every_change_as_the_tree_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let before = SledIndex::open(dir.path()).expect("open");
        before.put(&record("old", 5)).expect("put");
        drop(before);
        let index = SledIndex::open(dir.path())
            .expect("open")
            .with_records_in_memory()
            .expect("load");
        let old = ObjectRef::new("b", "old", None);
        assert_eq!(index.get(&old).expect("get"), Some(record("old", 5)));

        // Writers racing on the same few versions: puts of new dates and removals.
        std::thread::scope(|s| {
            for t in 0..4 {
                let index = &index;
                s.spawn(move || {
                    for i in 0..200 {
                        let key = format!("k{}", i % 3);
                        if (i + t) % 5 == 0 {
                            index
                                .remove(&ObjectRef::new("b", &key, None))
                                .expect("remove");
                        } else {
                            index.put(&record(&key, i * 4 + t)).expect("put");
                        }
                    }
                });
            }
        });
        let memory = index.memory.as_ref().expect("records in memory");
        for key in ["k0", "k1", "k2", "old"] {
            let object = ObjectRef::new("b", key, None);
            let k = key::version(&object);
            let on_disk = index
                .committed
                .get(&k)
                .expect("tree")
                .map(|v| decode_record(&v).expect("decode"));
            let in_memory = memory
                .by_key
                .get(k.as_slice())
                .map(|held| held.value().clone().record(&object));
            assert_eq!(in_memory, on_disk, "{key}");
        }
        assert_eq!(memory.by_key.len(), index.committed.len());

        index.clear_committed().expect("clear");
        assert_eq!(index.get(&old).expect("get"), None);
        assert!(memory.by_key.is_empty());
    }
}
