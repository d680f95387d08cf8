//! The lock index's figures: insert rate, lookup latency and bytes on disk per record.
//!
//!   cargo run --release -p policy --example index_bench -- [RECORDS] [DIR]
//!
//! Inserts RECORDS (default 1 000 000) committed records with `put`, flushes, then times
//! 100 000 random lookups one by one, and the write-ahead path (`begin` + `commit`, each flushed
//! to disk) for 1 000 records. A benchmark, not a test: it asserts nothing about time.

use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use policy::index::{LockIndex, LockRecord, LockSource, SledIndex};
use policy::lock::{LegalHold, ObjectLock, ObjectRef, Retention, RetentionMode};

fn record(i: u64) -> LockRecord {
    let now = Utc::now();
    #[allow(clippy::cast_possible_wrap)]
    let days = (i % 3650) as i64 + 1;
    LockRecord::new(
        ObjectRef::new(
            &format!("backups-{}", i % 8),
            &format!(
                "veeam/job-{:04}/blocks/{:016x}.blk",
                i % 1000,
                i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ),
            Some(&format!("{i:032x}")),
        ),
        ObjectLock {
            retention: Some(Retention {
                mode: if i.is_multiple_of(2) {
                    RetentionMode::Compliance
                } else {
                    RetentionMode::Governance
                },
                until: now + TimeDelta::days(days),
            }),
            legal_hold: LegalHold::Off,
        },
        LockSource::Header,
        now,
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(Ok(1_000_000), |s| s.parse())?;
    let tmp;
    let dir = match args.next() {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_owned()
        }
    };
    let index = SledIndex::open(&dir)?;

    let start = Instant::now();
    for i in 0..n {
        index.put(&record(i))?;
    }
    index.flush()?;
    let insert = start.elapsed();

    // Lookups of random existing versions (a fixed LCG, so runs compare).
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut lookups = Vec::with_capacity(100_000);
    for _ in 0..100_000 {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let obj = record(x % n).object;
        let t = Instant::now();
        let got = index.get(&obj)?;
        lookups.push(t.elapsed());
        assert!(got.is_some(), "lookup missed");
    }
    lookups.sort_unstable();

    let mut wal = Vec::with_capacity(1000);
    for i in 0..1000 {
        let r = record(n + i);
        let t = Instant::now();
        index.begin(&r)?;
        index.commit(&r.object, &r.object)?;
        wal.push(t.elapsed());
    }
    wal.sort_unstable();
    index.flush()?;
    let bytes = index.size_on_disk()?;

    #[allow(clippy::cast_precision_loss)]
    let rate = n as f64 / insert.as_secs_f64();
    println!("records:              {n}");
    println!(
        "insert (put, one flush at the end): {rate:.0} records/s ({:.1} s)",
        insert.as_secs_f64()
    );
    println!(
        "lookup (get):         p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs over {} lookups",
        percentile(&lookups, 0.50).as_secs_f64() * 1e6,
        percentile(&lookups, 0.99).as_secs_f64() * 1e6,
        lookups.last().map_or(0.0, |d| d.as_secs_f64() * 1e6),
        lookups.len()
    );
    println!(
        "write-ahead (begin + commit, each flushed): p50 {:.2} ms, p99 {:.2} ms over {} writes",
        percentile(&wal, 0.50).as_secs_f64() * 1e3,
        percentile(&wal, 0.99).as_secs_f64() * 1e3,
        wal.len()
    );
    #[allow(clippy::cast_precision_loss)]
    let per = bytes as f64 / (n + 1000) as f64;
    println!("on disk:              {bytes} bytes, {per:.0} bytes per record");
    Ok(())
}
