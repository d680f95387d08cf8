//! Many gateways, one bucket: what one gateway acknowledged about a lock is what every other
//! one enforces, read from the store (the version's own record and its journal,
//! `versions::journal`), whatever their own indexes hold.

use aws_sdk_s3::types::{ObjectLockMode, ObjectLockRetentionMode};
use chrono::TimeDelta;
use wormgate_tests::Stack;
use wormgate_tests::locks::{
    backend_name, default_retention, delete_version, in_secs, lock_bucket, put_locked, set_hold,
    set_retention,
};
use wormgate_tests::oss::OssBackend;

const DAY: i64 = 86_400;

/// Every clock (the gateways' and the OSS stand-in's) `days` on.
fn days_on(gateways: &[&Stack], oss: &OssBackend, days: i64) {
    for s in gateways {
        s.clock.advance(TimeDelta::seconds(days * DAY));
    }
    oss.advance(TimeDelta::seconds(days * DAY));
}

/// Whether the store still holds `name` in `bucket`.
async fn on_store(stack: &Stack, bucket: &str, name: &str) -> bool {
    stack
        .direct()
        .head_object()
        .bucket(bucket)
        .key(name)
        .send()
        .await
        .is_ok()
}

/// The reproduction: a writer puts K through B with a short retention, an administrator
/// extends it and sets a legal hold through A; once B's own date is past, B must still refuse.
/// A hold lifted through B is then seen by A, whose index still says ON.
#[tokio::test]
async fn a_lock_changed_through_one_gateway_holds_on_another() {
    let a = Stack::start().await;
    let b = a.beside().await;
    // A bucket made with object lock through A is a lock bucket to B.
    let bucket = lock_bucket(&a.gateway(), "two").await;
    let v = put_locked(
        &b.gateway(),
        &bucket,
        "K",
        ObjectLockMode::Governance,
        in_secs(15),
    )
    .await
    .expect("B takes a locked PUT on a bucket made through A");
    set_retention(
        &a.admin(),
        &bucket,
        "K",
        &v,
        ObjectLockRetentionMode::Governance,
        DAY,
        false,
    )
    .await;
    set_hold(&a.admin(), &bucket, "K", &v, true).await;

    // 20 s later by B's clock: B's index says the 15 s retention is over.
    b.clock.advance(TimeDelta::seconds(20));
    let got = delete_version(&b.gateway(), &bucket, "K", &v).await;
    assert_eq!(
        (got.status, got.code.as_str()),
        (403, "AccessDenied"),
        "{got:?}"
    );
    assert!(on_store(&a, &bucket, &backend_name("K", Some(&v))).await);
    let shown = b
        .gateway()
        .get_object_legal_hold()
        .bucket(&bucket)
        .key("K")
        .version_id(&v)
        .send()
        .await
        .expect("GetObjectLegalHold through B");
    assert_eq!(
        shown
            .legal_hold()
            .and_then(|h| h.status())
            .map(|s| s.as_str()),
        Some("ON")
    );

    // The hold lifted and the date shortened through B (the administrator's bypass): A, whose
    // index still says ON until a day from now, lets the delete through.
    set_hold(&b.admin(), &bucket, "K", &v, false).await;
    set_retention(
        &b.admin(),
        &bucket,
        "K",
        &v,
        ObjectLockRetentionMode::Governance,
        25,
        true,
    )
    .await;
    a.clock.advance(TimeDelta::seconds(30));
    let got = delete_version(&a.gateway(), &bucket, "K", &v).await;
    assert!(got.is_ok(), "{got:?}");
    assert!(!on_store(&a, &bucket, &backend_name("K", Some(&v))).await);
}

/// The same on `bucket-retention` (OSS BucketWorm): an extension and a hold taken by A live on
/// the store, so B, with an index of its own, enforces them after the bucket's period.
#[tokio::test]
async fn oss_extensions_and_holds_are_seen_by_every_gateway() {
    Box::pin(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let oss = OssBackend::start(dir.path()).await;
        let bucket = oss.bucket_with_worm("oss", 14).await;
        let a = Stack::start_oss(&oss, &[&bucket], None).await;
        let b = a.beside().await;
        let v = put_locked(
            &a.gateway(),
            &bucket,
            "K",
            ObjectLockMode::Governance,
            in_secs(2 * DAY),
        )
        .await
        .expect("a version id");
        set_retention(
            &a.admin(),
            &bucket,
            "K",
            &v,
            ObjectLockRetentionMode::Governance,
            30 * DAY,
            false,
        )
        .await;
        set_hold(&a.admin(), &bucket, "K", &v, true).await;

        // Day 16: the store's 14 days are over; B never saw the extension.
        days_on(&[&a, &b], &oss, 16);
        let got = delete_version(&b.gateway(), &bucket, "K", &v).await;
        assert_eq!(
            (got.status, got.code.as_str()),
            (403, "AccessDenied"),
            "{got:?}"
        );
        let shown = b
            .gateway()
            .get_object_retention()
            .bucket(&bucket)
            .key("K")
            .version_id(&v)
            .send()
            .await
            .expect("GetObjectRetention through B");
        assert_eq!(
            shown.retention().and_then(|r| r.mode()).map(|m| m.as_str()),
            Some("GOVERNANCE")
        );
        assert!(
            shown
                .retention()
                .and_then(|r| r.retain_until_date())
                .is_some_and(|d| d.secs() > chrono::Utc::now().timestamp() + 29 * DAY),
            "{shown:?}"
        );
        // The hold lifted through B: A refuses still, now on the extended date alone.
        set_hold(&b.admin(), &bucket, "K", &v, false).await;
        let got = delete_version(&a.gateway(), &bucket, "K", &v).await;
        assert_eq!(
            (got.status, got.code.as_str()),
            (403, "AccessDenied"),
            "{got:?}"
        );
        // Day 31: over, through either.
        days_on(&[&a, &b], &oss, 15);
        let got = delete_version(&a.gateway(), &bucket, "K", &v).await;
        assert!(got.is_ok(), "{got:?}");
    })
    .await;
}

/// A default retention set through A applies to uploads through B within the time B keeps
/// its reading of the bucket's configuration (`BUCKET_RECHECK`, 5 s), on `bucket-retention`.
#[tokio::test]
async fn a_default_retention_set_through_one_gateway_applies_on_another() {
    Box::pin(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let oss = OssBackend::start(dir.path()).await;
        let bucket = oss.bucket_with_worm("oss", 14).await;
        let a = Stack::start_oss(&oss, &[&bucket], None).await;
        let b = a.beside().await;
        // B reads the bucket's configuration (no default) before A changes it.
        let before = b
            .gateway()
            .put_object()
            .bucket(&bucket)
            .key("before")
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
            .send()
            .await
            .expect("put through B");
        assert!(before.version_id.is_some());
        a.admin()
            .put_object_lock_configuration()
            .bucket(&bucket)
            .object_lock_configuration(default_retention(ObjectLockRetentionMode::Governance, 20))
            .send()
            .await
            .expect("default retention through A");
        tokio::time::sleep(std::time::Duration::from_millis(5_200)).await;
        let after = b
            .gateway()
            .put_object()
            .bucket(&bucket)
            .key("after")
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
            .send()
            .await
            .expect("put through B")
            .version_id
            .expect("a version id");
        // Day 16: past the store's 14 days, within the default's 20.
        days_on(&[&a, &b], &oss, 16);
        for s in [&a, &b] {
            let got = delete_version(&s.gateway(), &bucket, "after", &after).await;
            assert_eq!(
                (got.status, got.code.as_str()),
                (403, "AccessDenied"),
                "{got:?}"
            );
        }
        let shown = b
            .gateway()
            .get_object_lock_configuration()
            .bucket(&bucket)
            .send()
            .await
            .expect("GetObjectLockConfiguration through B");
        let days = shown
            .object_lock_configuration()
            .and_then(|c| c.rule())
            .and_then(|r| r.default_retention())
            .and_then(|d| d.days());
        assert_eq!(days, Some(20));
    })
    .await;
}
