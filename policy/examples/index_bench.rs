//! The lock index's figures: insert rate, lookup latency and bytes on disk per record.
//!
//!   cargo run --release -p policy --example index_bench -- [RECORDS] [DIR] [BIG_CACHE_MIB]
//!
//! Inserts RECORDS (default 1 000 000) committed records with `put`, flushes, then times
//! 100 000 random lookups one by one with the gateway's default page cache, and the
//! write-ahead path of one locked write alone (`begin`, flush, `commit`) for 1 000 records.
//! Then it opens the index again with a page cache of BIG_CACHE_MIB (default 2048), reads
//! every record once to warm it, and times the same lookups again, with the process's
//! resident memory. Between the two it opens the index with the default page cache and every
//! record in memory (`with_records_in_memory`), and times the load and the same lookups.
//! A benchmark, not a test: it asserts nothing about time.

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

/// 100 000 lookups of random existing versions (a fixed LCG, so runs compare), sorted.
fn time_lookups(index: &SledIndex, n: u64) -> Result<Vec<Duration>, Box<dyn std::error::Error>> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut out = Vec::with_capacity(100_000);
    for _ in 0..100_000 {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let obj = record(x % n).object;
        let t = Instant::now();
        let got = index.get(&obj)?;
        out.push(t.elapsed());
        assert!(got.is_some(), "lookup missed");
    }
    out.sort_unstable();
    Ok(out)
}

fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
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
    let big_cache_mib: u64 = args.next().map_or(Ok(2048), |s| s.parse())?;
    let index = SledIndex::open(&dir)?;

    let start = Instant::now();
    for i in 0..n {
        index.put(&record(i))?;
    }
    index.flush()?;
    let insert = start.elapsed();

    let lookups = time_lookups(&index, n)?;

    let mut wal = Vec::with_capacity(1000);
    for i in 0..1000 {
        let r = record(n + i);
        let t = Instant::now();
        index.begin(&r)?;
        index.flush()?;
        index.commit(&r.object, &r.object)?;
        wal.push(t.elapsed());
    }
    wal.sort_unstable();
    index.flush()?;
    let bytes = index.size_on_disk()?;
    drop(index);

    let rss_before = rss_mib();
    let start = Instant::now();
    let in_memory = reopen(&dir, policy::index::DEFAULT_CACHE_BYTES)?.with_records_in_memory()?;
    let load = start.elapsed();
    let rss_in_memory = rss_mib();
    let memory = time_lookups(&in_memory, n)?;
    drop(in_memory);

    let big = reopen(&dir, big_cache_mib << 20)?;
    let mut seen = 0u64;
    let mut after = None;
    loop {
        let page = big.scan(&policy::index::Scan {
            bucket: None,
            prefix: "",
            after: after.as_ref(),
            limit: 10_000,
        })?;
        let Some(last) = page.last() else { break };
        seen += page.len() as u64;
        after = Some(last.object.clone());
    }
    let warm = time_lookups(&big, n)?;

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
        "lookup (get), {big_cache_mib} MiB cache warmed by reading {seen} records: p50 {:.1} µs, p99 {:.1} µs; resident memory {} MiB",
        percentile(&warm, 0.50).as_secs_f64() * 1e6,
        percentile(&warm, 0.99).as_secs_f64() * 1e6,
        rss_mib()
    );
    println!(
        "lookup (get), records in memory, loaded in {:.1} s: p50 {:.1} µs, p99 {:.1} µs; resident memory {rss_in_memory} MiB ({} MiB before loading)",
        load.as_secs_f64(),
        percentile(&memory, 0.50).as_secs_f64() * 1e6,
        percentile(&memory, 0.99).as_secs_f64() * 1e6,
        rss_before
    );
    println!(
        "write-ahead (begin, flush, commit): p50 {:.2} ms, p99 {:.2} ms over {} writes",
        percentile(&wal, 0.50).as_secs_f64() * 1e3,
        percentile(&wal, 0.99).as_secs_f64() * 1e3,
        wal.len()
    );
    #[allow(clippy::cast_precision_loss)]
    let per = bytes as f64 / (n + 1000) as f64;
    println!("on disk:              {bytes} bytes, {per:.0} bytes per record");
    Ok(())
}

/// sled's background thread can hold the directory's lock a moment after the last handle
/// is dropped: wait for it (at most 10 s).
fn reopen(dir: &std::path::Path, cache: u64) -> Result<SledIndex, Box<dyn std::error::Error>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match SledIndex::open_with_cache(dir, cache) {
            Ok(i) => return Ok(i),
            Err(e)
                if Instant::now() < deadline
                    && e.to_string().contains("could not acquire lock") =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e.into()),
        }
    }
}
