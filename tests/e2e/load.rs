//! Load: 200 client connections held open for 60 s (`WORMGATE_LOAD_SECS` changes the length)
//! against the real binary, mixing reads, writes and deletes the locks refuse. Every answer
//! must be the expected one (refusals included), every read must return the bytes written, and
//! the gateway's memory must stay flat once warm. Counts, rates and memory are printed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ObjectLockMode;
use wormgate_tests::locks::{in_secs, lock_bucket, put_locked};
use wormgate_tests::process::{self, Gateway, Store};
use wormgate_tests::{Reply, empty_raw_body, full, pattern, send_on, unique_bucket};

/// An object's content: letters (a reply's body is read as text), different per seed.
fn letters(len: usize, seed: u64) -> Vec<u8> {
    pattern(len, seed).iter().map(|b| b'a' + b % 26).collect()
}

const CONNECTIONS: usize = 200;
/// Objects every connection reads (64 KiB each) and locked objects it tries to delete.
const READ_OBJECTS: usize = 16;
const LOCKED_OBJECTS: usize = 16;
const READ_SIZE: usize = 64 << 10;
const WRITE_SIZE: usize = 16 << 10;

/// What one request was, for the tally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Get,
    Head,
    /// An overwrite of an unlocked object (a fixed set of keys per connection).
    Put,
    /// A new object under a COMPLIANCE lock: the enforcement path, and the index grows.
    PutLocked,
    /// A delete of a locked object: must be refused with 403 AccessDenied.
    DeleteLocked,
}

impl Kind {
    /// The mix: 4 in 10 reads, 2 heads, 2 overwrites, 1 locked write, 1 refused delete.
    fn nth(n: usize) -> Self {
        match n % 10 {
            0 | 3 | 6 | 8 => Self::Get,
            1 | 7 => Self::Head,
            2 | 5 => Self::Put,
            4 => Self::PutLocked,
            _ => Self::DeleteLocked,
        }
    }

    fn expected(self, reply: &Reply) -> bool {
        match self {
            Self::DeleteLocked => reply.status == 403 && reply.code() == "AccessDenied",
            _ => reply.status == 200,
        }
    }
}

fn rss_mib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_connections_for_a_minute_see_only_the_expected_answers() {
    Box::pin(async {
        let secs: u64 = std::env::var("WORMGATE_LOAD_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60);
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::start_in(dir.path()).await;
        let config = process::write_config(dir.path(), &store.url(), "");
        let mut gw = Gateway::start(&config, &[("WORMGATE_LOG".into(), "warn".into())]).await;
        let agent = gw.client();

        let locked = lock_bucket(&agent, "load-locked").await;
        // The locked versions, which the deletes name (a delete without a version id only
        // adds a delete marker).
        let mut versions = Vec::new();
        for i in 0..LOCKED_OBJECTS {
            let v = put_locked(
                &agent,
                &locked,
                &format!("locked-{i}"),
                ObjectLockMode::Compliance,
                in_secs(86_400),
            )
            .await
            .expect("a version");
            versions.push(v);
        }
        let versions = Arc::new(versions);
        let plain = unique_bucket("load-plain");
        agent
            .create_bucket()
            .bucket(&plain)
            .send()
            .await
            .expect("plain bucket");
        for i in 0..READ_OBJECTS {
            agent
                .put_object()
                .bucket(&plain)
                .key(format!("read-{i}"))
                .body(ByteStream::from(letters(READ_SIZE, i as u64)))
                .send()
                .await
                .expect("seed");
        }

        let authority = gw.url.trim_start_matches("http://").to_owned();
        let addr: std::net::SocketAddr = authority.parse().expect("addr");
        let tally = Arc::new(Mutex::new(BTreeMap::<(Kind, u16), u64>::new()));
        let wrong = Arc::new(Mutex::new(Vec::<String>::new()));
        let acked_locks = Arc::new(Mutex::new(Vec::<String>::new()));
        let started = Instant::now();
        let until = started + Duration::from_secs(secs);
        let mut workers = tokio::task::JoinSet::new();
        for c in 0..CONNECTIONS {
            let (authority, locked, plain) = (authority.clone(), locked.clone(), plain.clone());
            let (tally, wrong) = (Arc::clone(&tally), Arc::clone(&wrong));
            let acked_locks = Arc::clone(&acked_locks);
            let versions = Arc::clone(&versions);
            workers.spawn(async move {
                let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
                let (mut conn, driver) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                        .await
                        .expect("handshake");
                tokio::spawn(driver);
                let write = bytes::Bytes::from(pattern(WRITE_SIZE, c as u64));
                // A lock request must carry a checksum of its body.
                let crc32 = base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    crc32fast::hash(&write).to_be_bytes(),
                );
                // Connections start at different places in the mix.
                let mut n = c;
                while Instant::now() < until {
                    let kind = Kind::nth(n);
                    let i = n / 10;
                    let (method, path, body) = match kind {
                        Kind::Get => ("GET", format!("/{plain}/read-{}", i % READ_OBJECTS), empty_raw_body()),
                        Kind::Head => ("HEAD", format!("/{plain}/read-{}", i % READ_OBJECTS), empty_raw_body()),
                        Kind::Put => ("PUT", format!("/{plain}/c{c}-{}", i % 4), full(write.clone())),
                        Kind::PutLocked => ("PUT", format!("/{locked}/c{c}-{n}"), full(write.clone())),
                        Kind::DeleteLocked => {
                            let j = i % LOCKED_OBJECTS;
                            ("DELETE", format!("/{locked}/locked-{j}?versionId={}", versions[j]), empty_raw_body())
                        }
                    };
                    let until_date = (chrono::Utc::now() + chrono::TimeDelta::days(1))
                        .format("%Y-%m-%dT%H:%M:%SZ")
                        .to_string();
                    let length = if method == "PUT" { WRITE_SIZE.to_string() } else { String::new() };
                    let mut headers = Vec::new();
                    if method == "PUT" {
                        headers.push(("content-length", length.as_str()));
                    }
                    if kind == Kind::PutLocked {
                        headers.push(("x-amz-object-lock-mode", "COMPLIANCE"));
                        headers.push(("x-amz-checksum-crc32", crc32.as_str()));
                        headers.push(("x-amz-object-lock-retain-until-date", until_date.as_str()));
                    }
                    let reply = send_on(&mut conn, &authority, method, &path, &headers, body).await;
                    let mut ok = kind.expected(&reply);
                    if ok && kind == Kind::Get {
                        let want = letters(READ_SIZE, (i % READ_OBJECTS) as u64);
                        ok = reply.body.as_bytes() == want.as_slice();
                    }
                    if ok && kind == Kind::PutLocked {
                        acked_locks.lock().expect("acked").push(path.clone());
                    }
                    if !ok {
                        wrong.lock().expect("wrong").push(format!(
                            "{kind:?} {path}: {} {}",
                            reply.status,
                            reply.body.chars().take(200).collect::<String>()
                        ));
                    }
                    *tally.lock().expect("tally").entry((kind, reply.status)).or_default() += 1;
                    n += 1;
                }
            });
        }

        // The gateway's resident memory once a second while the load runs.
        let pid = gw.pid();
        let mut samples = Vec::new();
        while Instant::now() < until {
            samples.push((started.elapsed().as_secs(), rss_mib(pid)));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        while let Some(done) = workers.join_next().await {
            done.expect("a connection's worker");
        }
        let elapsed = started.elapsed().as_secs_f64();
        let tally = tally.lock().expect("tally").clone();
        let total: u64 = tally.values().sum();
        eprintln!(
            "load: {CONNECTIONS} connections, {elapsed:.0} s, {total} requests ({:.0}/s): {tally:?}",
            total as f64 / elapsed
        );
        // Warm: past the first quarter of the run. Flat: the second half's peak is within
        // 16 MiB of the peak of the warm first half (the lock index's page cache, capped at
        // 32 MiB, fills with the locked writes; nothing else may grow with the request count).
        let quarter = secs / 4;
        let half = secs / 2;
        let peak = |from: u64, to: u64| {
            samples
                .iter()
                .filter(|(t, _)| (from..to).contains(t))
                .map(|(_, m)| *m)
                .max()
                .unwrap_or(0)
        };
        let (first, warm, late) = (
            samples.first().map_or(0, |s| s.1),
            peak(quarter, half),
            peak(half, secs + 1),
        );
        eprintln!("load: gateway RSS {first} MiB at the start, peak {warm} MiB in the warm first half, {late} MiB in the second half");

        let wrong = wrong.lock().expect("wrong").clone();
        assert!(
            wrong.is_empty(),
            "{} unexpected answers, e.g. {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(5)]
        );
        for kind in [Kind::Get, Kind::Head, Kind::Put, Kind::PutLocked, Kind::DeleteLocked] {
            assert!(
                tally.keys().any(|(k, _)| *k == kind),
                "no {kind:?} ran: {tally:?}"
            );
        }
        assert!(warm > 0 && late > 0, "no memory samples: {samples:?}");
        assert!(
            late <= warm + 16,
            "memory grew under steady load: {warm} MiB → {late} MiB ({samples:?})"
        );

        // Every object locked before is still there and locked; so is every hundredth locked
        // write acknowledged under load.
        let acked = acked_locks.lock().expect("acked").clone();
        let keys = (0..LOCKED_OBJECTS)
            .map(|i| format!("locked-{i}"))
            .chain(acked.iter().step_by(100).filter_map(|p| {
                p.strip_prefix(&format!("/{locked}/")).map(str::to_owned)
            }));
        let mut checked = 0;
        for key in keys {
            let head = agent
                .head_object()
                .bucket(&locked)
                .key(&key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{key}: {e:?}"));
            assert_eq!(
                head.object_lock_mode(),
                Some(&ObjectLockMode::Compliance),
                "{key}"
            );
            checked += 1;
        }
        eprintln!("load: {checked} locked objects checked after the run, all COMPLIANCE");
        gw.stop_cleanly().await;
        drop(store);
    })
    .await;
}
