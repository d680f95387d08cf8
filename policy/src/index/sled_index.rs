//! The default index: a sled database in one directory.
//!
//! Trees: `committed` and `pending` (version key → record), `by_date` (retain-until ++ version
//! key → nothing), `buckets`, `uploads`, and `meta` holding the format version. The committed
//! record and its date entry change together in one transaction.

use std::path::Path;

use chrono::{DateTime, Utc};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::{Transactional, Tree};

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
}

fn storage(e: sled::Error) -> IndexError {
    IndexError::Storage(e.to_string())
}

fn tx_error(e: TransactionError<IndexError>) -> IndexError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => storage(e),
    }
}

type TxResult<T> = Result<T, ConflictableTransactionError<IndexError>>;

/// Replaces the committed record of `object` (or removes it, with `None`) and its date entry.
fn replace_committed(
    committed: &TransactionalTree,
    by_date: &TransactionalTree,
    object: &ObjectRef,
    record: Option<&LockRecord>,
) -> TxResult<()> {
    let k = key::version(object);
    if let Some(old) = committed.get(&k)? {
        let old = decode_record(&old).map_err(ConflictableTransactionError::Abort)?;
        if let Some(r) = old.lock.retention {
            by_date.remove(key::by_date(r.until, object))?;
        }
    }
    match record {
        Some(record) => {
            let bytes = encode(record).map_err(ConflictableTransactionError::Abort)?;
            committed.insert(k, bytes)?;
            if let Some(r) = record.lock.retention {
                by_date.insert(key::by_date(r.until, object), &[][..])?;
            }
        }
        None => {
            committed.remove(k)?;
        }
    }
    Ok(())
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
            db,
        })
    }

    /// Bytes the database occupies on disk.
    ///
    /// # Errors
    /// sled cannot tell.
    pub fn size_on_disk(&self) -> IndexResult<u64> {
        self.db.size_on_disk().map_err(storage)
    }

    fn durable(&self) -> IndexResult<()> {
        self.db.flush().map(|_| ()).map_err(storage)
    }
}

impl LockIndex for SledIndex {
    fn get(&self, object: &ObjectRef) -> IndexResult<Option<LockRecord>> {
        let k = key::version(object);
        let committed = self
            .committed
            .get(&k)
            .map_err(storage)?
            .map(|v| decode_record(&v))
            .transpose()?;
        let pending = self
            .pending
            .get(&k)
            .map_err(storage)?
            .map(|v| decode_record(&v))
            .transpose()?;
        Ok(match (committed, pending) {
            (Some(c), Some(p)) => Some(c.strictest(p)),
            (c, p) => c.or(p),
        })
    }

    fn begin(&self, record: &LockRecord) -> IndexResult<()> {
        let k = key::version(&record.object);
        self.pending
            .transaction(|pending| {
                let merged = match pending.get(&k)? {
                    Some(old) => decode_record(&old)
                        .map_err(ConflictableTransactionError::Abort)?
                        .strictest(record.clone()),
                    None => record.clone(),
                };
                let bytes = encode(&merged).map_err(ConflictableTransactionError::Abort)?;
                pending.insert(k.as_slice(), bytes)?;
                Ok(())
            })
            .map_err(tx_error)
    }

    fn commit(&self, pending_ref: &ObjectRef, committed_ref: &ObjectRef) -> IndexResult<()> {
        let k = key::version(pending_ref);
        (&self.pending, &self.committed, &self.by_date)
            .transaction(|(pending, committed, by_date)| {
                if let Some(p) = pending.remove(k.as_slice())? {
                    let mut p = decode_record(&p).map_err(ConflictableTransactionError::Abort)?;
                    p.object = committed_ref.clone();
                    replace_committed(committed, by_date, committed_ref, Some(&p))?;
                }
                Ok(())
            })
            .map_err(tx_error)
    }

    fn abort(&self, object: &ObjectRef) -> IndexResult<()> {
        self.pending
            .remove(key::version(object))
            .map(|_| ())
            .map_err(storage)
    }

    fn put(&self, record: &LockRecord) -> IndexResult<()> {
        (&self.committed, &self.by_date)
            .transaction(|(committed, by_date)| {
                replace_committed(committed, by_date, &record.object, Some(record))
            })
            .map_err(tx_error)
    }

    fn remove(&self, object: &ObjectRef) -> IndexResult<()> {
        (&self.committed, &self.by_date)
            .transaction(|(committed, by_date)| replace_committed(committed, by_date, object, None))
            .map_err(tx_error)?;
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
            let v = self
                .committed
                .get(&k[8..])
                .map_err(storage)?
                .ok_or_else(|| IndexError::Corrupt("date entry without its record".into()))?;
            out.push(decode_record(&v)?);
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
        for tree in [&self.committed, &self.pending] {
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
        self.committed.clear().map_err(storage)?;
        self.by_date.clear().map_err(storage)?;
        self.durable()
    }

    fn len(&self) -> IndexResult<u64> {
        Ok(self.committed.len() as u64)
    }

    fn flush(&self) -> IndexResult<()> {
        self.durable()
    }
}
