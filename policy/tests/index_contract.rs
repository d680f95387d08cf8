//! One contract, every `LockIndex`: the same suite runs on the in-memory and the sled index.

use chrono::{DateTime, TimeDelta, Utc};
use policy::index::{
    BucketRecord, LockIndex, LockRecord, LockSource, MemoryIndex, Scan, SledIndex,
};
use policy::lock::{BucketLock, LegalHold, ObjectLock, ObjectRef, Retention, RetentionMode};

fn t0() -> DateTime<Utc> {
    "2030-01-01T00:00:00Z".parse().expect("date")
}

fn record(
    bucket: &str,
    key: &str,
    version: Option<&str>,
    days: i64,
    mode: RetentionMode,
) -> LockRecord {
    LockRecord::new(
        ObjectRef::new(bucket, key, version),
        ObjectLock {
            retention: Some(Retention {
                mode,
                until: t0() + TimeDelta::days(days),
            }),
            legal_hold: LegalHold::Off,
        },
        LockSource::Header,
        t0(),
    )
}

fn keys(records: &[LockRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            format!(
                "{}/{}@{}",
                r.object.bucket,
                r.object.key,
                r.object.version_id.as_deref().unwrap_or("null")
            )
        })
        .collect()
}

fn all<'a>(bucket: Option<&'a str>, prefix: &'a str) -> Scan<'a> {
    Scan {
        bucket,
        prefix,
        after: None,
        limit: usize::MAX,
    }
}

fn contract(index: &dyn LockIndex) {
    pending_counts_until_committed(index);
    commit_names_the_version(index);
    scans_and_dates(index);
    buckets_and_uploads(index);
    latest_versions(index);
}

fn pending_counts_until_committed(index: &dyn LockIndex) {
    let obj = ObjectRef::new("wal", "k", None);
    assert_eq!(index.get(&obj).expect("get"), None);

    // A pending lock is already a lock.
    let first = record("wal", "k", None, 10, RetentionMode::Governance);
    index.begin(&first).expect("begin");
    assert_eq!(index.get(&obj).expect("get"), Some(first.clone()));
    assert_eq!(index.len().expect("len"), 0);
    assert_eq!(keys(&index.pending().expect("pending")), ["wal/k@null"]);

    // Aborted: gone.
    index.abort(&obj).expect("abort");
    assert_eq!(index.get(&obj).expect("get"), None);

    // Committed: it stays, and a later pending write that is weaker does not weaken it.
    index.begin(&first).expect("begin");
    index.commit(&obj, &obj).expect("commit");
    assert_eq!(index.get(&obj).expect("get"), Some(first.clone()));
    assert!(index.pending().expect("pending").is_empty());
    let weaker = record("wal", "k", None, 5, RetentionMode::Governance);
    index.begin(&weaker).expect("begin");
    assert_eq!(
        index.get(&obj).expect("get").map(|r| r.lock),
        Some(first.lock)
    );
    // Two pending writes merge: the stricter survives a crash between them.
    let stronger = record("wal", "k", None, 20, RetentionMode::Compliance);
    index.begin(&stronger).expect("begin");
    let seen = index.get(&obj).expect("get").expect("record");
    assert_eq!(seen.lock, stronger.lock);
    index.commit(&obj, &obj).expect("commit");
    assert_eq!(
        index.get(&obj).expect("get").map(|r| r.lock),
        Some(stronger.lock)
    );

    // Holds: pending counts too.
    let now = t0();
    assert!(index.holds_locks("wal", now).expect("holds"));
    assert!(
        !index
            .holds_locks("wal", now + TimeDelta::days(21))
            .expect("holds")
    );
    index.remove(&obj).expect("remove");
    assert_eq!(index.get(&obj).expect("get"), None);
    assert!(!index.holds_locks("wal", now).expect("holds"));
    let held = LockRecord::new(
        ObjectRef::new("wal", "held", None),
        ObjectLock {
            retention: None,
            legal_hold: LegalHold::On,
        },
        LockSource::PutObjectLegalHold,
        now,
    );
    index.begin(&held).expect("begin");
    assert!(
        index
            .holds_locks("wal", now + TimeDelta::days(10_000))
            .expect("holds")
    );
    index.commit(&held.object, &held.object).expect("commit");
    index.remove(&held.object).expect("remove");
}

/// Records come back in S3's key order: the bytes of the key (so `x\0…` before `x/…`).
fn commit_names_the_version(index: &dyn LockIndex) {
    // A versioned store names the version only in its reply.
    let pending = record("ver", "k", None, 3, RetentionMode::Compliance);
    index.begin(&pending).expect("begin");
    let v1 = ObjectRef::new("ver", "k", Some("v1"));
    index.commit(&pending.object, &v1).expect("commit");
    assert_eq!(index.get(&pending.object).expect("get"), None);
    let got = index.get(&v1).expect("get").expect("record");
    assert_eq!(got.object, v1);
    assert_eq!(got.lock, pending.lock);
    index.remove(&v1).expect("remove");
}

fn scans_and_dates(index: &dyn LockIndex) {
    let records = [
        record("a", "x/1", Some("v1"), 3, RetentionMode::Compliance),
        record("a", "x/1", Some("v2"), 1, RetentionMode::Governance),
        record("a", "x/2", None, 2, RetentionMode::Compliance),
        record("a", "x\0nul", None, 5, RetentionMode::Compliance),
        record("a", "y", None, 4, RetentionMode::Governance),
        record("ab", "x/1", None, 6, RetentionMode::Compliance),
    ];
    for r in &records {
        index.put(r).expect("put");
    }
    index.flush().expect("flush");
    assert_eq!(index.len().expect("len"), 6);

    assert_eq!(
        keys(&index.scan(&all(Some("a"), "x/")).expect("scan")),
        ["a/x/1@v1", "a/x/1@v2", "a/x/2@null"]
    );
    assert_eq!(
        keys(&index.scan(&all(Some("a"), "x")).expect("scan")),
        ["a/x\0nul@null", "a/x/1@v1", "a/x/1@v2", "a/x/2@null"]
    );
    assert_eq!(
        keys(&index.scan(&all(Some("ab"), "")).expect("scan")),
        ["ab/x/1@null"]
    );
    assert_eq!(index.scan(&all(None, "")).expect("scan").len(), 6);
    assert_eq!(
        keys(&index.scan(&all(None, "x/1")).expect("scan")),
        ["a/x/1@v1", "a/x/1@v2", "ab/x/1@null"]
    );

    // Pages of two, resumed after the last record of the previous page.
    let mut seen = Vec::new();
    let mut after: Option<ObjectRef> = None;
    loop {
        let page = index
            .scan(&Scan {
                bucket: Some("a"),
                prefix: "",
                after: after.as_ref(),
                limit: 2,
            })
            .expect("scan");
        if page.is_empty() {
            break;
        }
        after = page.last().map(|r| r.object.clone());
        seen.extend(keys(&page));
    }
    assert_eq!(
        seen,
        [
            "a/x\0nul@null",
            "a/x/1@v1",
            "a/x/1@v2",
            "a/x/2@null",
            "a/y@null"
        ]
    );

    // By date: earliest first, `before` exclusive, paged.
    let before = t0() + TimeDelta::days(4);
    assert_eq!(
        keys(&index.expiring_before(before, None, 100).expect("dates")),
        ["a/x/1@v2", "a/x/2@null", "a/x/1@v1"]
    );
    let first = index.expiring_before(before, None, 1).expect("dates");
    assert_eq!(
        keys(
            &index
                .expiring_before(before, first.last(), 100)
                .expect("dates")
        ),
        ["a/x/2@null", "a/x/1@v1"]
    );

    // Replacing a record moves its date entry; removing drops it.
    let extended = record("a", "x/1", Some("v2"), 30, RetentionMode::Governance);
    index.put(&extended).expect("put");
    assert_eq!(
        keys(&index.expiring_before(before, None, 100).expect("dates")),
        ["a/x/2@null", "a/x/1@v1"]
    );
    index.remove(&records[2].object).expect("remove");
    assert_eq!(
        keys(&index.expiring_before(before, None, 100).expect("dates")),
        ["a/x/1@v1"]
    );
    index.clear_committed().expect("clear");
    assert!(index.is_empty().expect("empty"));
    assert!(
        index
            .expiring_before(t0() + TimeDelta::days(1000), None, 100)
            .expect("dates")
            .is_empty()
    );
}

/// The latest-version cache: a write sets it, a read's fill never overrides what is known,
/// a forget only removes the version it names.
fn latest_versions(index: &dyn LockIndex) {
    assert_eq!(index.latest("b", "k").expect("latest"), None);
    index.fill_latest("b", "k", "v1").expect("fill");
    assert_eq!(
        index.latest("b", "k").expect("latest").as_deref(),
        Some("v1")
    );
    index.fill_latest("b", "k", "v0").expect("fill");
    assert_eq!(
        index.latest("b", "k").expect("latest").as_deref(),
        Some("v1")
    );
    index.set_latest("b", "k", "v2").expect("set");
    assert_eq!(
        index.latest("b", "k").expect("latest").as_deref(),
        Some("v2")
    );
    index.forget_latest("b", "k", "v1").expect("forget");
    assert_eq!(
        index.latest("b", "k").expect("latest").as_deref(),
        Some("v2")
    );
    index.forget_latest("b", "k", "v2").expect("forget");
    assert_eq!(index.latest("b", "k").expect("latest"), None);
    // Keys and buckets apart: `k` is not `k2`, nor `k` of another bucket.
    index.set_latest("b", "k2", "x").expect("set");
    index.set_latest("c", "k", "y").expect("set");
    assert_eq!(index.latest("b", "k").expect("latest"), None);
    index.clear_latest().expect("clear");
    assert_eq!(index.latest("b", "k2").expect("latest"), None);
}

fn buckets_and_uploads(index: &dyn LockIndex) {
    assert_eq!(index.bucket("b").expect("bucket"), None);
    let rec = BucketRecord::new(BucketLock {
        enabled: true,
        default_retention: None,
    });
    index.put_bucket("b", &rec).expect("put bucket");
    assert_eq!(index.bucket("b").expect("bucket"), Some(rec));
    index.remove_bucket("b").expect("remove bucket");
    assert_eq!(index.bucket("b").expect("bucket"), None);

    let up = record("b", "big", None, 1, RetentionMode::Compliance);
    index.put_upload("u-1", &up).expect("put upload");
    assert_eq!(index.upload("u-1").expect("upload"), Some(up));
    index.remove_upload("u-1").expect("remove upload");
    assert_eq!(index.upload("u-1").expect("upload"), None);
}

#[test]
fn memory_index_keeps_the_contract() {
    contract(&MemoryIndex::new());
}

#[test]
fn sled_index_keeps_the_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    contract(&SledIndex::open(dir.path()).expect("open"));
}

#[test]
fn sled_index_with_records_in_memory_keeps_the_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = SledIndex::open(dir.path())
        .expect("open")
        .with_records_in_memory()
        .expect("records in memory");
    contract(&index);
}

/// Opens the index again in this process. sled's background flusher thread can hold the
/// directory's file lock for a moment after the last handle is dropped, so the lock is waited
/// for (at most 5 s); any other error fails at once.
fn reopen(dir: &std::path::Path) -> SledIndex {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match SledIndex::open(dir) {
            Ok(index) => return index,
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("reopen: {e}"),
        }
    }
}

#[test]
fn sled_index_survives_reopening_with_pending_and_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let committed = record("r", "c", None, 1, RetentionMode::Compliance);
    let pending = record("r", "p", None, 2, RetentionMode::Governance);
    {
        let index = SledIndex::open(dir.path()).expect("open");
        index.begin(&committed).expect("begin");
        index
            .commit(&committed.object, &committed.object)
            .expect("commit");
        index.begin(&pending).expect("begin");
        index.flush().expect("flush");
        // Dropped without a commit: as if the process died while the write was at the backend.
    }
    let index = reopen(dir.path());
    assert_eq!(index.get(&committed.object).expect("get"), Some(committed));
    assert_eq!(
        index.get(&pending.object).expect("get"),
        Some(pending.clone())
    );
    assert_eq!(keys(&index.pending().expect("pending")), ["r/p@null"]);
}

#[test]
fn sled_index_refuses_another_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = sled::open(dir.path()).expect("sled");
        db.insert("format", &[99u8]).expect("insert");
        db.flush().expect("flush");
    }
    assert!(SledIndex::open(dir.path()).is_err());
}
