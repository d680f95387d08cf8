//! Many gateways, one truth, under a randomized workload: three gateways, each with its own
//! data and index directories, in front of one store, per profile:
//! - `gateway`: three `wormgate serve` processes over an s3s-fs store, all under one clock moved
//!   forward by whole days (libfaketime for the gateways, the store's `Date` with them);
//! - `native`: three processes over LocalStack, whose locks follow the real clock: a "day" is
//!   4 real seconds there;
//! - `bucket-retention`: three gateways in this process (their clocks moved with the OSS
//!   stand-in's) over the stand-in with a 3-day BucketWorm period; the restart is a stop and a
//!   start, not a kill -9.
//!
//! Each step sends one request through a gateway chosen at random: locked PUTs, plain PUTs over
//! locked keys, retention extensions, an agent's attempts to shorten, legal holds set and
//! lifted by an administrator, GOVERNANCE shortened with the bypass, deletes by version (with
//! and without the bypass), deletes that make markers, DeleteObjects. A third of the way in one
//! gateway is killed with -9 and started again; two thirds in another loses its index and
//! starts with an empty one.
//!
//! A model replays what was acknowledged: the lock each version was given and every
//! acknowledged change to it. The checker counts as a violation a version destroyed while an
//! acknowledged protection covered it at that moment (a hold, a retention not yet over, a
//! COMPLIANCE date for the bypass), a weakening acknowledged for a caller without the right,
//! and at the end: a version not destroyed by an acknowledged request that is missing from the
//! store or has other bytes, and a lock any gateway reports weaker than the model's.
//!
//! Seeds: `WORMGATE_MANY_SEEDS` (comma-separated), default fixed ones; each run prints its
//! figures and the seed that reproduces it, and writes its history (one line a request, its
//! gateway and its answer) to `target/tmp/many-<profile>-<seed>.log`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    Delete, ObjectIdentifier, ObjectLockLegalHold, ObjectLockLegalHoldStatus, ObjectLockMode,
    ObjectLockRetention, ObjectLockRetentionMode,
};
use chrono::{DateTime, TimeDelta, Utc};
use policy::lock::Profile;
use policy::lock::{LegalHold, ObjectLock, Retention, RetentionMode};
use wormgate_tests::locks::backend_name;

use wormgate_tests::oss::OssBackend;
use wormgate_tests::process::{
    BACKEND_KEY, BACKEND_SECRET, Gateway, Store, client_at, faketime_file, write_config,
};
use wormgate_tests::{ACCESS_KEY, ADMIN_KEY, ADMIN_SECRET, LocalStack, SECRET_KEY, Stack};

const DAY: i64 = 86_400;
const STEPS: usize = 240;
const KEYS: [&str; 4] = [
    "backup/a.vbk",
    "backup/b.vbk",
    "index key",
    "restic/locks/x",
];

/// SplitMix64: small, and the same sequence everywhere for a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        #[allow(clippy::cast_possible_truncation)]
        let i = (self.next() % n as u64) as usize;
        i
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// One version as the model knows it.
struct Version {
    key: String,
    id: String,
    body: Vec<u8>,
    lock: ObjectLock,
    destroyed: bool,
}

#[derive(Default)]
struct Figures {
    operations: usize,
    acknowledged: usize,
    refused: usize,
    other: BTreeMap<u16, usize>,
    destroyed: usize,
    violations: Vec<String>,
}

/// The three gateways and the store behind them.
enum Fleet {
    /// `wormgate serve` processes; `clock_file` moves their clock (libfaketime) when the
    /// store's (`store`) can be moved too; without it, days pass in real time.
    Processes {
        store: Option<Store>,
        _localstack: Option<LocalStack>,
        clock_file: Option<PathBuf>,
        configs: Vec<PathBuf>,
        gateways: Vec<Gateway>,
        direct: aws_sdk_s3::Client,
    },
    /// Gateways in this process over the OSS stand-in.
    InProcess { oss: OssBackend, stacks: Vec<Stack> },
}

struct Sim {
    _dir: tempfile::TempDir,
    fleet: Fleet,
    profile: Profile,
    /// How far every clock was moved, in seconds (simulated days).
    offset: i64,
    /// A day, in seconds of the clocks the locks follow.
    day: i64,
    bucket: String,
    rng: Rng,
    versions: Vec<Version>,
    figures: Figures,
    history: Vec<String>,
}

impl Sim {
    async fn start(profile: Profile, seed: u64) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut day = DAY;
        let bucket = format!("many-{}-{seed}", profile.as_str());
        let fleet = match profile {
            Profile::Gateway | Profile::Native => {
                let (store, localstack, backend_url, extra) = if profile == Profile::Gateway {
                    // The gateways sign for the store with their faked time: any skew goes.
                    let store = Store::start(
                        &dir.path().join("store"),
                        "127.0.0.1:0".parse().expect("addr"),
                        400 * 86_400,
                    )
                    .await;
                    let url = store.url();
                    (Some(store), None, url, "")
                } else {
                    day = 4;
                    let ls = LocalStack::start().await;
                    let url = format!("http://127.0.0.1:{}", ls.port);
                    (None, Some(ls), url, "profile = \"native\"")
                };
                let clock_file = store.as_ref().map(|_| {
                    let f = dir.path().join("clock");
                    std::fs::write(&f, "+0").expect("clock file");
                    f
                });
                let env = clock_file.as_deref().map(faketime_file).unwrap_or_default();
                let mut configs = Vec::new();
                let mut gateways = Vec::new();
                for i in 0..3 {
                    let gdir = dir.path().join(format!("gateway-{i}"));
                    std::fs::create_dir_all(&gdir).expect("dir");
                    let config = write_config(&gdir, &backend_url, extra);
                    gateways.push(Gateway::start(&config, &env).await);
                    configs.push(config);
                }
                let direct = wormgate_tests::s3_client(&backend_url, BACKEND_KEY, BACKEND_SECRET);
                Fleet::Processes {
                    store,
                    _localstack: localstack,
                    clock_file,
                    configs,
                    gateways,
                    direct,
                }
            }
            Profile::BucketRetention => {
                let oss = OssBackend::start(dir.path()).await;
                let worm_bucket = oss.bucket_with_worm("many", 3).await;
                let first = Stack::start_oss(&oss, &[&worm_bucket], None).await;
                let second = first.beside().await;
                let third = first.beside().await;
                let fleet = Fleet::InProcess {
                    oss,
                    stacks: vec![first, second, third],
                };
                let mut sim = Self::new(dir, fleet, profile, day, worm_bucket, seed);
                sim.history
                    .push("-- bucket with a 3-day BucketWorm period".into());
                return sim;
            }
        };
        let sim = Self::new(dir, fleet, profile, day, bucket, seed);
        sim.agent(0)
            .create_bucket()
            .bucket(&sim.bucket)
            .object_lock_enabled_for_bucket(true)
            .send()
            .await
            .expect("lock bucket");
        sim
    }

    fn new(
        dir: tempfile::TempDir,
        fleet: Fleet,
        profile: Profile,
        day: i64,
        bucket: String,
        seed: u64,
    ) -> Self {
        Self {
            _dir: dir,
            fleet,
            profile,
            offset: 0,
            day,
            bucket,
            rng: Rng(seed),
            versions: Vec::new(),
            figures: Figures::default(),
            history: Vec::new(),
        }
    }

    fn now(&self) -> DateTime<Utc> {
        Utc::now() + TimeDelta::seconds(self.offset)
    }

    fn client(&self, g: usize, key: (&str, &str)) -> aws_sdk_s3::Client {
        match &self.fleet {
            // A gateway under faketime checks the signing time against its own clock.
            Fleet::Processes { gateways, .. } => {
                client_at(&gateways[g].url, key, TimeDelta::seconds(self.offset))
            }
            Fleet::InProcess { stacks, .. } => {
                client_at(&stacks[g].gateway_url(), key, TimeDelta::zero())
            }
        }
    }

    fn agent(&self, g: usize) -> aws_sdk_s3::Client {
        self.client(g, (ACCESS_KEY, SECRET_KEY))
    }

    fn admin(&self, g: usize) -> aws_sdk_s3::Client {
        self.client(g, (ADMIN_KEY, ADMIN_SECRET))
    }

    /// The store itself, for the final check.
    fn direct(&self) -> aws_sdk_s3::Client {
        match &self.fleet {
            Fleet::Processes { direct, .. } => direct.clone(),
            Fleet::InProcess { oss, .. } => {
                // The s3s-fs store under the stand-in, on the host's clock.
                client_at(
                    &oss.store.endpoint.to_string(),
                    (&oss.store.access_key, oss.store.secret_key.expose()),
                    TimeDelta::zero(),
                )
            }
        }
    }

    /// Every clock one day on: the gateways' and the store's, or, where the store's cannot be
    /// moved (LocalStack), a day of real time.
    async fn next_day(&mut self) {
        match &self.fleet {
            Fleet::Processes {
                store: Some(store),
                clock_file: Some(file),
                ..
            } => {
                self.offset += self.day;
                std::fs::write(file, format!("+{}", self.offset)).expect("clock file");
                store.advance(self.day);
            }
            Fleet::Processes { .. } => {
                tokio::time::sleep(std::time::Duration::from_secs(self.day.unsigned_abs())).await;
            }
            Fleet::InProcess { oss, stacks } => {
                self.offset += self.day;
                for s in stacks {
                    s.clock.advance(TimeDelta::seconds(self.day));
                }
                oss.advance(TimeDelta::seconds(self.day));
            }
        }
        self.history.push(format!("-- a day on ({})", self.now()));
    }

    async fn restart(&mut self, g: usize, lose_index: bool) {
        match &mut self.fleet {
            Fleet::Processes {
                configs,
                gateways,
                clock_file,
                ..
            } => {
                gateways[g].kill9().await;
                if lose_index {
                    let index = configs[g].with_file_name("index");
                    std::fs::remove_dir_all(&index).expect("remove the index");
                }
                let env = clock_file.as_deref().map(faketime_file).unwrap_or_default();
                gateways[g] = Gateway::start(&configs[g], &env).await;
            }
            Fleet::InProcess { stacks, .. } => {
                stacks[g].stop_gateway_for_test().await;
                if lose_index {
                    std::fs::remove_dir_all(&stacks[g].settings.locks.index_dir)
                        .expect("remove the index");
                }
                stacks[g].restart_gateway().await;
            }
        }
        self.history.push(format!(
            "-- gateway {g} {} and started again{}",
            if matches!(self.fleet, Fleet::Processes { .. }) {
                "killed with -9"
            } else {
                "stopped"
            },
            if lose_index { ", its index gone" } else { "" }
        ));
    }

    /// A date whole days from now and 6 hours: never within minutes of a moment the workload
    /// acts at (the clock moves by whole days, a step takes well under an hour).
    fn in_days(&self, days: i64) -> DateTime<Utc> {
        let at = self.now() + TimeDelta::seconds(days * self.day + self.day / 4);
        // Whole seconds, rounded up: the dates go out as whole seconds.
        DateTime::from_timestamp(at.timestamp() + 1, 0).expect("date")
    }

    fn note(&mut self, g: usize, what: String, status: u16) {
        self.figures.operations += 1;
        match status {
            200..=299 => self.figures.acknowledged += 1,
            403 => self.figures.refused += 1,
            s => *self.figures.other.entry(s).or_default() += 1,
        }
        self.history.push(format!("g{g} {what} -> {status}"));
    }

    fn violation(&mut self, what: String) {
        self.history.push(format!("!! {what}"));
        self.figures.violations.push(what);
    }

    /// A version the model holds, not destroyed: preferring a locked one most of the time.
    fn pick(&mut self) -> Option<usize> {
        let live: Vec<usize> = (0..self.versions.len())
            .filter(|&i| !self.versions[i].destroyed)
            .collect();
        if live.is_empty() {
            return None;
        }
        let locked: Vec<usize> = live
            .iter()
            .copied()
            .filter(|&i| !self.versions[i].lock.is_empty())
            .collect();
        let from = if !locked.is_empty() && self.rng.chance(70) {
            locked
        } else {
            live
        };
        Some(from[self.rng.below(from.len())])
    }

    /// What a destroyed version's protection said at the moment; `bypass`: the caller asked
    /// for the GOVERNANCE bypass and holds the right.
    fn check_destroy(&mut self, i: usize, bypass: bool, how: &str) {
        let now = self.now();
        let v = &self.versions[i];
        let held = v.lock.legal_hold == LegalHold::On;
        let retained = v
            .lock
            .retention
            .is_some_and(|r| r.active_at(now) && (!bypass || r.mode == RetentionMode::Compliance));
        let what = format!("{how} destroyed {} {} while {:?}", v.key, v.id, v.lock);
        self.versions[i].destroyed = true;
        self.figures.destroyed += 1;
        if held || retained {
            self.violation(what);
        }
    }

    async fn step(&mut self, n: usize) {
        let g = self.rng.below(3);
        let key = KEYS[self.rng.below(KEYS.len())].to_owned();
        match self.rng.below(100) {
            0..=19 => self.put(g, key, true).await,
            20..=29 => self.put(g, key, false).await,
            30..=39 => self.extend(g).await,
            40..=44 => self.agent_shortens(g).await,
            45..=52 => self.hold(g, true).await,
            53..=58 => self.hold(g, false).await,
            59..=63 => self.bypass_shortens(g).await,
            64..=75 => self.delete(g, false).await,
            76..=81 => self.delete(g, true).await,
            82..=87 => self.marker(g, key).await,
            88..=93 => self.delete_objects(g).await,
            _ => self.next_day().await,
        }
        if n % 40 == 39 {
            self.next_day().await;
        }
    }

    async fn put(&mut self, g: usize, key: String, locked: bool) {
        let body = format!("{key} #{}", self.versions.len()).into_bytes();
        let mut req = self
            .agent(g)
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(ByteStream::from(body.clone()));
        let mut lock = ObjectLock::default();
        if locked {
            let mode = if self.rng.chance(30) {
                RetentionMode::Compliance
            } else {
                RetentionMode::Governance
            };
            #[allow(clippy::cast_possible_wrap)]
            let days = 1 + self.rng.below(5) as i64;
            let until = self.in_days(days);
            lock.retention = Some(Retention { mode, until });
            req = req
                .object_lock_mode(ObjectLockMode::from(mode.as_s3()))
                .object_lock_retain_until_date(aws_sdk_s3::primitives::DateTime::from_secs(
                    until.timestamp(),
                ));
        }
        let got = req.send().await;
        let status = status_of(&got);
        self.note(g, format!("PUT {key} {lock:?}"), status);
        if let Ok(out) = got
            && let Some(id) = out.version_id
        {
            self.versions.push(Version {
                key,
                id,
                body,
                lock,
                destroyed: false,
            });
        }
    }

    async fn set_retention(
        &mut self,
        g: usize,
        i: usize,
        retention: Retention,
        admin: bool,
    ) -> u16 {
        let v = &self.versions[i];
        let client = if admin { self.admin(g) } else { self.agent(g) };
        let got = client
            .put_object_retention()
            .bucket(&self.bucket)
            .key(&v.key)
            .version_id(&v.id)
            .set_bypass_governance_retention(admin.then_some(true))
            .retention(
                ObjectLockRetention::builder()
                    .mode(ObjectLockRetentionMode::from(retention.mode.as_s3()))
                    .retain_until_date(aws_sdk_s3::primitives::DateTime::from_secs(
                        retention.until.timestamp(),
                    ))
                    .build(),
            )
            .send()
            .await;
        let status = status_of(&got);
        let what = format!(
            "{} retention {} {} -> {retention:?}",
            if admin { "admin" } else { "agent" },
            v.key,
            v.id
        );
        self.note(g, what, status);
        status
    }

    async fn extend(&mut self, g: usize) {
        let Some(i) = self.pick() else { return };
        let Some(current) = self.versions[i].lock.retention else {
            return;
        };
        #[allow(clippy::cast_possible_wrap)]
        let days = 1 + self.rng.below(3) as i64;
        let longer = Retention {
            until: current.until.max(self.in_days(0)) + TimeDelta::seconds(days * self.day),
            ..current
        };
        if (200..300).contains(&self.set_retention(g, i, longer, false).await) {
            self.versions[i].lock.retention = Some(longer);
        }
    }

    /// An agent (no bypass right) shortening a retention that still protects: refused, or a
    /// violation.
    async fn agent_shortens(&mut self, g: usize) {
        let Some(i) = self.pick() else { return };
        let now = self.now();
        let Some(current) = self.versions[i].lock.retention.filter(|r| r.active_at(now)) else {
            return;
        };
        let shorter = Retention {
            mode: RetentionMode::Governance,
            until: self.in_days(0).min(current.until - TimeDelta::seconds(1)),
        };
        if (200..300).contains(&self.set_retention(g, i, shorter, false).await) {
            let v = &self.versions[i];
            let what = format!("agent shortened {} {} from {current:?}", v.key, v.id);
            self.violation(what);
            self.versions[i].lock.retention = Some(shorter);
        }
    }

    /// An administrator shortening a GOVERNANCE retention with the bypass (allowed), or a
    /// COMPLIANCE one (refused, or a violation).
    async fn bypass_shortens(&mut self, g: usize) {
        let Some(i) = self.pick() else { return };
        let Some(current) = self.versions[i].lock.retention else {
            return;
        };
        let shorter = Retention {
            mode: current.mode,
            until: self.in_days(0),
        };
        if shorter.until >= current.until {
            return;
        }
        let status = self.set_retention(g, i, shorter, true).await;
        if (200..300).contains(&status) {
            if current.mode == RetentionMode::Compliance && current.active_at(self.now()) {
                let v = &self.versions[i];
                let what = format!(
                    "COMPLIANCE shortened on {} {} from {current:?}",
                    v.key, v.id
                );
                self.violation(what);
            }
            self.versions[i].lock.retention = Some(shorter);
        }
    }

    async fn hold(&mut self, g: usize, on: bool) {
        let Some(i) = self.pick() else { return };
        let v = &self.versions[i];
        let got = self
            .admin(g)
            .put_object_legal_hold()
            .bucket(&self.bucket)
            .key(&v.key)
            .version_id(&v.id)
            .legal_hold(
                ObjectLockLegalHold::builder()
                    .status(if on {
                        ObjectLockLegalHoldStatus::On
                    } else {
                        ObjectLockLegalHoldStatus::Off
                    })
                    .build(),
            )
            .send()
            .await;
        let status = status_of(&got);
        let what = format!("admin hold {on} {} {}", v.key, v.id);
        self.note(g, what, status);
        if (200..300).contains(&status) {
            self.versions[i].lock.legal_hold = if on { LegalHold::On } else { LegalHold::Off };
        }
    }

    async fn delete(&mut self, g: usize, bypass: bool) {
        let Some(i) = self.pick() else { return };
        let v = &self.versions[i];
        let client = if bypass { self.admin(g) } else { self.agent(g) };
        let got = client
            .delete_object()
            .bucket(&self.bucket)
            .key(&v.key)
            .version_id(&v.id)
            .set_bypass_governance_retention(bypass.then_some(true))
            .send()
            .await;
        let status = status_of(&got);
        let what = format!(
            "DELETE {} {}{}",
            v.key,
            v.id,
            if bypass { " (admin, bypass)" } else { "" }
        );
        self.note(g, what, status);
        if (200..300).contains(&status) {
            self.check_destroy(i, bypass, "DeleteObject");
        }
    }

    async fn marker(&mut self, g: usize, key: String) {
        let got = self
            .agent(g)
            .delete_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await;
        let status = status_of(&got);
        self.note(g, format!("DELETE {key} (a marker)"), status);
    }

    async fn delete_objects(&mut self, g: usize) {
        let mut picked: Vec<usize> = Vec::new();
        for _ in 0..3 {
            if let Some(i) = self.pick()
                && !picked.contains(&i)
            {
                picked.push(i);
            }
        }
        if picked.is_empty() {
            return;
        }
        let objects: Vec<ObjectIdentifier> = picked
            .iter()
            .map(|&i| {
                ObjectIdentifier::builder()
                    .key(&self.versions[i].key)
                    .version_id(&self.versions[i].id)
                    .build()
                    .expect("identifier")
            })
            .collect();
        let got = self
            .agent(g)
            .delete_objects()
            .bucket(&self.bucket)
            .delete(
                Delete::builder()
                    .set_objects(Some(objects))
                    .build()
                    .expect("delete"),
            )
            .send()
            .await;
        let status = status_of(&got);
        self.note(
            g,
            format!("DeleteObjects of {} versions", picked.len()),
            status,
        );
        let Ok(out) = got else { return };
        for d in out.deleted() {
            let found = picked.iter().copied().find(|&i| {
                Some(self.versions[i].key.as_str()) == d.key()
                    && Some(self.versions[i].id.as_str()) == d.version_id()
            });
            if let Some(i) = found {
                self.check_destroy(i, false, "DeleteObjects");
            }
        }
    }

    /// At the end: every version not destroyed by an acknowledged request is on the store with
    /// its bytes, and every gateway reports its lock at least as strict as the model.
    async fn check_end(&mut self) {
        let store = self.direct();
        for i in 0..self.versions.len() {
            let v = &self.versions[i];
            if v.destroyed {
                continue;
            }
            // The store's own name for the version: the gateway's layout, or the key and the
            // store's version id on `native`.
            let (name, version) = if self.profile == Profile::Native {
                (v.key.clone(), Some(v.id.clone()))
            } else {
                (backend_name(&v.key, Some(&v.id)), None)
            };
            let stored = match store
                .get_object()
                .bucket(&self.bucket)
                .key(&name)
                .set_version_id(version)
                .send()
                .await
            {
                Ok(out) => Some(
                    out.body
                        .collect()
                        .await
                        .expect("body")
                        .into_bytes()
                        .to_vec(),
                ),
                Err(e) => {
                    self.history.push(format!("store GET {name}: {e:?}"));
                    None
                }
            };
            if stored.as_deref() != Some(v.body.as_slice()) {
                let what = format!("{} {} missing or changed on the store", v.key, v.id);
                self.violation(what);
                continue;
            }
            for g in 0..3 {
                let shown = self.shown_lock(g, i).await;
                let v = &self.versions[i];
                if shown.strictest(v.lock) != shown {
                    let what = format!(
                        "gateway {g} shows {} {} as {shown:?}, acknowledged {:?}",
                        v.key, v.id, v.lock
                    );
                    self.violation(what);
                }
            }
        }
    }

    async fn shown_lock(&self, g: usize, i: usize) -> ObjectLock {
        let v = &self.versions[i];
        let admin = self.admin(g);
        let retention = admin
            .get_object_retention()
            .bucket(&self.bucket)
            .key(&v.key)
            .version_id(&v.id)
            .send()
            .await
            .ok()
            .and_then(|r| {
                let r = r.retention()?;
                Some(Retention {
                    mode: RetentionMode::from_s3(r.mode()?.as_str())?,
                    until: DateTime::from_timestamp(r.retain_until_date()?.secs(), 0)?,
                })
            });
        let hold = admin
            .get_object_legal_hold()
            .bucket(&self.bucket)
            .key(&v.key)
            .version_id(&v.id)
            .send()
            .await
            .ok()
            .and_then(|h| h.legal_hold()?.status().cloned());
        ObjectLock {
            retention,
            legal_hold: if hold == Some(ObjectLockLegalHoldStatus::On) {
                LegalHold::On
            } else {
                LegalHold::Off
            },
        }
    }
}

fn status_of<T, E>(got: &Result<T, aws_sdk_s3::error::SdkError<E>>) -> u16 {
    match got {
        Ok(_) => 200,
        Err(e) => e.raw_response().map_or(0, |r| r.status().as_u16()),
    }
}

async fn run(profile: Profile, seed: u64) -> Figures {
    let mut sim = Sim::start(profile, seed).await;
    for n in 0..STEPS {
        if n == STEPS / 3 {
            sim.restart(1, false).await;
        }
        if n == 2 * STEPS / 3 {
            sim.restart(2, true).await;
        }
        sim.step(n).await;
    }
    sim.check_end().await;
    let f = &sim.figures;
    eprintln!(
        "{} seed {seed}: {} operations, {} acknowledged, {} refused (403), other {:?}; \
         {} versions, {} destroyed by acknowledged deletes; violations {}",
        profile.as_str(),
        f.operations,
        f.acknowledged,
        f.refused,
        f.other,
        sim.versions.len(),
        f.destroyed,
        f.violations.len()
    );
    // The whole history, one line a request, for reading or replaying by hand.
    let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("many-{}-{seed}.log", profile.as_str()));
    std::fs::write(&log, sim.history.join("\n")).expect("history");
    eprintln!("history: {}", log.display());
    if !f.violations.is_empty() {
        eprintln!("history of seed {seed}:\n{}", sim.history.join("\n"));
    }
    if let Fleet::Processes { gateways, .. } = &mut sim.fleet {
        for g in gateways {
            g.kill9().await;
        }
    }
    std::mem::take(&mut sim.figures)
}

/// The seeds of a run: `WORMGATE_MANY_SEEDS`, else `default`.
fn seeds(default: &[u64]) -> Vec<u64> {
    std::env::var("WORMGATE_MANY_SEEDS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

async fn check(profile: Profile, default_seeds: &[u64]) {
    let mut all = Vec::new();
    for seed in seeds(default_seeds) {
        let figures = Box::pin(run(profile, seed)).await;
        assert!(
            figures.acknowledged > figures.operations / 3,
            "seed {seed}: too little was acknowledged to mean anything: {} of {}",
            figures.acknowledged,
            figures.operations
        );
        assert!(figures.refused > 0, "seed {seed}: nothing was refused");
        all.push((seed, figures.violations));
    }
    for (seed, violations) in &all {
        assert!(
            violations.is_empty(),
            "{profile:?} seed {seed}: {violations:#?}"
        );
    }
}

#[tokio::test]
async fn gateway_profile_three_processes_one_store() {
    check(Profile::Gateway, &[20_261_201, 7]).await;
}

#[tokio::test]
async fn bucket_retention_three_gateways_one_oss_bucket() {
    check(Profile::BucketRetention, &[20_261_202]).await;
}

#[tokio::test]
async fn native_three_processes_one_localstack() {
    check(Profile::Native, &[20_261_203]).await;
}
