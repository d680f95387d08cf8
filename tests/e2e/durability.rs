//! Locks outlive the gateway: a restart, the loss of the whole index, a rebuild from the
//! backend; and 64 concurrent clients cannot race a lock away.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode};
use policy::index::{
    BucketRecord, IndexError, IndexResult, LockIndex, LockRecord, Scan, SledIndex,
};
use policy::lock::ObjectLock;
use wormgate::server::Server;
use wormgate_tests::locks::{Expect, Matrix, hold, in_secs, lock_bucket, outcome, put_locked};
use wormgate_tests::{Stack, get_bytes};

/// Every committed (version, lock) in the index, in order.
fn snapshot(stack: &Stack) -> Vec<(String, ObjectLock)> {
    let index = SledIndex::open(&stack.settings.locks.index_dir).expect("open index");
    index
        .scan(&Scan {
            bucket: None,
            prefix: "",
            after: None,
            limit: usize::MAX,
        })
        .expect("scan")
        .into_iter()
        .map(|r| (format!("{}/{}", r.object.bucket, r.object.key), r.lock))
        .collect()
}

async fn retention_secs(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    version: Option<String>,
) -> Option<i64> {
    client
        .get_object_retention()
        .bucket(bucket)
        .key(key)
        .set_version_id(version)
        .send()
        .await
        .ok()?
        .retention()?
        .retain_until_date()
        .map(aws_sdk_s3::primitives::DateTime::secs)
}

/// The destructive requests that must stay refused, whatever happened to the index: a delete
/// of each protected version by its id. (A lock bucket is versioned: a delete without an id
/// only adds a delete marker, and a PUT makes a new version; neither destroys the version.)
async fn assert_still_locked(
    stack: &Stack,
    bucket: &str,
    versions: &HashMap<&str, Option<String>>,
    m: &mut Matrix,
    when: &str,
) {
    let agent = stack.gateway();
    let admin = stack.admin();
    for key in ["comp", "gov", "held"] {
        let version = versions[key].clone();
        let del = outcome(
            admin
                .delete_object()
                .bucket(bucket)
                .key(key)
                .set_version_id(version.clone())
                .send(),
        )
        .await;
        assert!(!del.is_ok(), "{when}: delete of {key} went through");
        m.check(
            &format!("{when}: DeleteObject {key} by version id"),
            &del,
            Expect::Locked,
        );
        let over = outcome(
            agent
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(ByteStream::from_static(b"ransom"))
                .send(),
        )
        .await;
        m.check(
            &format!("{when}: PutObject over {key} (a new version)"),
            &over,
            Expect::Ok,
        );
    }
    let kept = agent
        .get_object()
        .bucket(bucket)
        .key("comp")
        .set_version_id(versions["comp"].clone())
        .send()
        .await
        .expect("the locked version");
    let body = kept.body.collect().await.expect("body").into_bytes();
    assert_eq!(&body[..], b"locked backup", "{when}: data changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_survive_restart_index_loss_and_rebuild() {
    let mut stack = Stack::start().await;
    let agent = stack.gateway();
    let admin = stack.admin();
    let mut m = Matrix::new("gateway");
    let bucket = lock_bucket(&agent, "durable").await;
    let mut versions: HashMap<&str, Option<String>> = HashMap::new();
    versions.insert(
        "comp",
        put_locked(
            &agent,
            &bucket,
            "comp",
            ObjectLockMode::Compliance,
            in_secs(3600),
        )
        .await,
    );
    versions.insert(
        "gov",
        put_locked(
            &agent,
            &bucket,
            "gov",
            ObjectLockMode::Governance,
            in_secs(3600),
        )
        .await,
    );
    let held = agent
        .put_object()
        .bucket(&bucket)
        .key("held")
        .body(ByteStream::from_static(b"evidence"))
        .send()
        .await
        .expect("put");
    versions.insert("held", held.version_id);
    admin
        .put_object_legal_hold()
        .bucket(&bucket)
        .key("held")
        .legal_hold(hold(true))
        .send()
        .await
        .expect("hold");
    // The extension must survive everything below, not only the first date.
    let extended = in_secs(7200);
    agent
        .put_object_retention()
        .bucket(&bucket)
        .key("comp")
        .retention(
            ObjectLockRetention::builder()
                .mode(ObjectLockRetentionMode::Compliance)
                .retain_until_date(extended)
                .build(),
        )
        .send()
        .await
        .expect("extend");

    stack.restart_gateway().await;
    assert_still_locked(&stack, &bucket, &versions, &mut m, "after restart").await;
    assert_eq!(
        retention_secs(&stack.gateway(), &bucket, "comp", versions["comp"].clone()).await,
        Some(extended.secs())
    );

    // Stop the gateway to read the index it wrote, then lose it; compare after the rebuild.
    let before = {
        let dir = stack.settings.locks.index_dir.clone();
        stop(&mut stack).await;
        let s = snapshot(&stack);
        std::fs::remove_dir_all(&dir).expect("delete the index");
        s
    };
    assert_eq!(before.len(), 3, "{before:?}");

    // No index at all: every lock still holds, read back from the objects.
    start(&mut stack).await;
    assert_still_locked(&stack, &bucket, &versions, &mut m, "index deleted").await;

    // Rebuild: the index equals what it was.
    stop(&mut stack).await;
    {
        let server = Server::new(&stack.settings).await.expect("server");
        let report = server.rebuild_index().await.expect("rebuild");
        assert_eq!(report.locked, 3, "{report:?}");
        assert_eq!(report.unreadable, 0);
    }
    let after = snapshot(&stack);
    assert_eq!(after, before, "the rebuilt index differs");
    m.rows.push((
        "index rebuild: index equals what it was".into(),
        "3 of 3 locks".into(),
    ));
    start(&mut stack).await;
    assert_still_locked(&stack, &bucket, &versions, &mut m, "after rebuild").await;
    assert_eq!(
        retention_secs(&stack.gateway(), &bucket, "comp", versions["comp"].clone()).await,
        Some(extended.secs())
    );
    println!("{}", m.render());
    stack.shutdown().await;
}

async fn stop(stack: &mut Stack) {
    stack.stop_gateway_for_test().await;
}

async fn start(stack: &mut Stack) {
    stack.restart_gateway().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_clients_cannot_race_a_lock_away() {
    const CLIENTS: usize = 64;
    const ROUNDS: usize = 6;
    let stack = Stack::start().await;
    let agent = stack.gateway();
    let bucket = lock_bucket(&agent, "race").await;
    let keys = ["k0", "k1", "k2", "k3"];
    // The locked version of each key, the one every destructive request aims at.
    let mut locked: HashMap<&str, Option<String>> = HashMap::new();
    for k in keys {
        let v = put_locked(
            &agent,
            &bucket,
            k,
            ObjectLockMode::Compliance,
            in_secs(3600),
        )
        .await;
        locked.insert(k, v);
    }
    let locked = Arc::new(locked);
    let acknowledged: Arc<Mutex<HashMap<&str, Vec<i64>>>> = Arc::default();
    let destroyed = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let client = stack.gateway();
        let bucket = bucket.clone();
        let acknowledged = acknowledged.clone();
        let destroyed = destroyed.clone();
        let locked = locked.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..ROUNDS {
                let key = keys[(c + round) % keys.len()];
                let version = locked[key].clone();
                match (c + round) % 4 {
                    0 => {
                        let r = outcome(
                            client
                                .delete_object()
                                .bucket(&bucket)
                                .key(key)
                                .set_version_id(version)
                                .send(),
                        )
                        .await;
                        if r.is_ok() {
                            destroyed
                                .lock()
                                .expect("lock")
                                .push(format!("delete {key}"));
                        }
                    }
                    // A new version and a delete marker: allowed, and they destroy nothing.
                    1 => {
                        let r = outcome(
                            client
                                .put_object()
                                .bucket(&bucket)
                                .key(key)
                                .body(ByteStream::from_static(b"ransom"))
                                .send(),
                        )
                        .await;
                        assert!(r.is_ok(), "{r:?}");
                    }
                    2 => {
                        let r =
                            outcome(client.delete_object().bucket(&bucket).key(key).send()).await;
                        assert!(r.is_ok(), "{r:?}");
                    }
                    _ => {
                        #[allow(clippy::cast_possible_wrap)]
                        let until = in_secs(3600 + (c * ROUNDS + round) as i64 * 7 % 1000);
                        let r = outcome(
                            client
                                .put_object_retention()
                                .bucket(&bucket)
                                .key(key)
                                .set_version_id(version)
                                .retention(
                                    ObjectLockRetention::builder()
                                        .mode(ObjectLockRetentionMode::Compliance)
                                        .retain_until_date(until)
                                        .build(),
                                )
                                .send(),
                        )
                        .await;
                        if r.is_ok() {
                            acknowledged
                                .lock()
                                .expect("lock")
                                .entry(key)
                                .or_default()
                                .push(until.secs());
                        } else {
                            // Only a shortening may be refused.
                            assert_eq!(r.status, 403, "{r:?}");
                        }
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    let destroyed = destroyed.lock().expect("lock").clone();
    assert!(
        destroyed.is_empty(),
        "destructive requests succeeded: {destroyed:?}"
    );
    let acknowledged = acknowledged.lock().expect("lock").clone();
    let mut extensions = 0;
    for k in keys {
        let acked = acknowledged.get(k).cloned().unwrap_or_default();
        extensions += acked.len();
        let latest = retention_secs(&agent, &bucket, k, locked[k].clone())
            .await
            .expect("retention");
        if let Some(max) = acked.iter().max() {
            assert_eq!(latest, *max, "{k}: an acknowledged extension was lost");
        }
        let kept = agent
            .get_object()
            .bucket(&bucket)
            .key(k)
            .set_version_id(locked[k].clone())
            .send()
            .await
            .expect("the locked version");
        let body = kept.body.collect().await.expect("body").into_bytes();
        assert_eq!(&body[..], b"locked backup", "{k} was overwritten");
    }
    println!(
        "{CLIENTS} clients x {ROUNDS} rounds: 0 destructive requests succeeded, {extensions} extensions acknowledged, none lost"
    );
    assert!(extensions > 0);
    stack.shutdown().await;
}

/// An index whose storage has failed: every read and write is an error.
struct BrokenIndex;

impl LockIndex for BrokenIndex {
    fn get(&self, _: &policy::lock::ObjectRef) -> IndexResult<Option<LockRecord>> {
        Err(broken())
    }
    fn begin(&self, _: &LockRecord) -> IndexResult<()> {
        Err(broken())
    }
    fn commit(&self, _: &policy::lock::ObjectRef, _: &policy::lock::ObjectRef) -> IndexResult<()> {
        Err(broken())
    }
    fn abort(&self, _: &policy::lock::ObjectRef) -> IndexResult<()> {
        Err(broken())
    }
    fn put(&self, _: &LockRecord) -> IndexResult<()> {
        Err(broken())
    }
    fn remove(&self, _: &policy::lock::ObjectRef) -> IndexResult<()> {
        Err(broken())
    }
    fn scan(&self, _: &Scan<'_>) -> IndexResult<Vec<LockRecord>> {
        Err(broken())
    }
    fn expiring_before(
        &self,
        _: chrono::DateTime<chrono::Utc>,
        _: Option<&LockRecord>,
        _: usize,
    ) -> IndexResult<Vec<LockRecord>> {
        Err(broken())
    }
    fn pending(&self) -> IndexResult<Vec<LockRecord>> {
        Err(broken())
    }
    fn holds_locks(&self, _: &str, _: chrono::DateTime<chrono::Utc>) -> IndexResult<bool> {
        Err(broken())
    }
    fn bucket(&self, _: &str) -> IndexResult<Option<BucketRecord>> {
        Err(broken())
    }
    fn put_bucket(&self, _: &str, _: &BucketRecord) -> IndexResult<()> {
        Err(broken())
    }
    fn remove_bucket(&self, _: &str) -> IndexResult<()> {
        Err(broken())
    }
    fn put_upload(&self, _: &str, _: &LockRecord) -> IndexResult<()> {
        Err(broken())
    }
    fn upload(&self, _: &str) -> IndexResult<Option<LockRecord>> {
        Err(broken())
    }
    fn remove_upload(&self, _: &str) -> IndexResult<()> {
        Err(broken())
    }
    fn latest(&self, _: &str, _: &str) -> IndexResult<Option<String>> {
        Err(broken())
    }
    fn set_latest(&self, _: &str, _: &str, _: &str) -> IndexResult<()> {
        Err(broken())
    }
    fn fill_latest(&self, _: &str, _: &str, _: &str) -> IndexResult<()> {
        Err(broken())
    }
    fn forget_latest(&self, _: &str, _: &str, _: &str) -> IndexResult<()> {
        Err(broken())
    }
    fn clear_latest(&self) -> IndexResult<()> {
        Err(broken())
    }
    fn clear_committed(&self) -> IndexResult<()> {
        Err(broken())
    }
    fn len(&self) -> IndexResult<u64> {
        Err(broken())
    }
    fn flush(&self) -> IndexResult<()> {
        Err(broken())
    }
}

fn broken() -> IndexError {
    IndexError::Storage("injected fault: the disk under the index failed".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_index_refuses_with_503() {
    let mut stack = Stack::start().await;
    let agent = stack.gateway();
    let bucket = lock_bucket(&agent, "broken").await;
    put_locked(
        &agent,
        &bucket,
        "comp",
        ObjectLockMode::Compliance,
        in_secs(3600),
    )
    .await;

    // The same store, now behind a gateway whose index fails.
    stack.stop_gateway_for_test().await;
    let server = Server::with_index(&stack.settings, Some(Arc::new(BrokenIndex)))
        .await
        .expect("server");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(listener, async {
        let _ = stopped.await;
    }));
    let client =
        wormgate_tests::s3_client(&url, wormgate_tests::ACCESS_KEY, wormgate_tests::SECRET_KEY);
    let del = outcome(client.delete_object().bucket(&bucket).key("comp").send()).await;
    assert_eq!(
        (del.status, del.code.as_str()),
        (503, "ServiceUnavailable"),
        "{del:?}"
    );
    let over = outcome(
        client
            .put_object()
            .bucket(&bucket)
            .key("comp")
            .body(ByteStream::from_static(b"ransom"))
            .send(),
    )
    .await;
    assert_eq!(over.status, 503, "{over:?}");
    let locked_put = outcome(
        client
            .put_object()
            .bucket(&bucket)
            .key("new")
            .body(ByteStream::from_static(b"x"))
            .object_lock_mode(ObjectLockMode::Compliance)
            .object_lock_retain_until_date(in_secs(60))
            .send(),
    )
    .await;
    assert_eq!(locked_put.status, 503, "{locked_put:?}");
    let _ = stop.send(());
    task.await.expect("join").expect("server");
    // And the data is untouched.
    stack.restart_gateway().await;
    let body = get_bytes(&stack.gateway(), &bucket, "comp", None).await;
    assert_eq!(&body[..], b"locked backup");
    stack.shutdown().await;
}
