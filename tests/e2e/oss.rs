//! The bucket-retention profile against the OSS stand-in (`wormgate_tests::oss`), through a real
//! gateway with aws-sdk-s3, and the admin listener's retention audit.
//!
//! The seed scenario: backup software sets 30-day per-object locks on a bucket whose backend
//! (OSS BucketWorm) period is 14 days. Both clocks (the gateway's and the stand-in's) are moved
//! forward together to play the days out.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode};
use chrono::TimeDelta;
use wormgate_tests::locks::{delete_version, in_secs, put_locked};
use wormgate_tests::oss::OssBackend;
use wormgate_tests::{ADMIN_TOKEN, Stack};

const DAY: i64 = 86_400;

async fn admin_get(stack: &Stack, path_and_query: &str, token: Option<&str>) -> (u16, String) {
    let reply = stack.admin_get(path_and_query, token).await;
    (reply.status, reply.body)
}

async fn audit(stack: &Stack, path_and_query: &str) -> Vec<serde_json::Value> {
    let (status, body) = admin_get(stack, path_and_query, Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{path_and_query}: {body}");
    body.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn advance(stack: &Stack, oss: &OssBackend, days: i64) {
    stack.clock.advance(TimeDelta::seconds(days * DAY));
    oss.advance(TimeDelta::seconds(days * DAY));
}

#[tokio::test]
async fn per_object_dates_are_enforced_beyond_the_bucket_period() {
    Box::pin(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let oss = OssBackend::start(dir.path()).await;
        let bucket = oss.bucket_with_worm("oss", 14).await;
        let stack = Stack::start_oss(&oss, &[&bucket], None).await;
        let s3 = stack.gateway();

        // Clients that check for object lock see it enabled.
        let conf = s3
            .get_object_lock_configuration()
            .bucket(&bucket)
            .send()
            .await
            .expect("GetObjectLockConfiguration");
        assert_eq!(
            conf.object_lock_configuration()
                .and_then(|c| c.object_lock_enabled())
                .map(|e| e.as_str()),
            Some("Enabled")
        );

        let v30 = put_locked(
            &s3,
            &bucket,
            "k30",
            ObjectLockMode::Compliance,
            in_secs(30 * DAY),
        )
        .await
        .expect("a version id");
        let v7 = put_locked(
            &s3,
            &bucket,
            "k7",
            ObjectLockMode::Governance,
            in_secs(7 * DAY),
        )
        .await
        .expect("a version id");
        let plain = s3
            .put_object()
            .bucket(&bucket)
            .key("plain")
            .body(ByteStream::from_static(b"no lock asked"))
            .send()
            .await
            .expect("plain put")
            .version_id
            .expect("a version id");
        let r = s3
            .get_object_retention()
            .bucket(&bucket)
            .key("k30")
            .send()
            .await
            .expect("GetObjectRetention");
        assert_eq!(
            r.retention().and_then(|r| r.mode()).map(|m| m.as_str()),
            Some("COMPLIANCE")
        );
        let versions = [("k30", &v30), ("k7", &v7), ("plain", &plain)];

        // Day 0: the gateway refuses k30 and k7; the backend's own period refuses "plain" (409
        // FileImmutable, seen as S3's lock refusal).
        for (key, version) in versions {
            let got = delete_version(&s3, &bucket, key, version).await;
            assert_eq!(
                (got.status, got.code.as_str(), got.message.as_str()),
                (
                    403,
                    "AccessDenied",
                    "Access Denied because object protected by object lock."
                ),
                "delete {key} on day 0"
            );
        }
        // The bucket is versioned, as a lock bucket is on AWS: a PUT over k30 is a new
        // version, a delete without a version id a delete marker; the locked version stays.
        let overwrite = s3
            .put_object()
            .bucket(&bucket)
            .key("k30")
            .body(ByteStream::from_static(b"ransom"))
            .send()
            .await
            .expect("a new version");
        assert_ne!(overwrite.version_id.as_deref(), Some(v30.as_str()));
        let marker = s3
            .delete_object()
            .bucket(&bucket)
            .key("k30")
            .send()
            .await
            .expect("a delete marker");
        assert_eq!(marker.delete_marker, Some(true));
        let kept = s3
            .get_object()
            .bucket(&bucket)
            .key("k30")
            .version_id(&v30)
            .send()
            .await
            .expect("the locked version");
        let body = kept.body.collect().await.expect("body").into_bytes();
        assert_eq!(&body[..], b"locked backup");

        // The audit: k30 outlives the backend's 14 days by about 16; k7 does not.
        let gaps = audit(&stack, &format!("/audit/gaps?bucket={bucket}")).await;
        assert_eq!(gaps.len(), 1, "{gaps:?}");
        assert_eq!(gaps[0]["key"], "k30");
        assert_eq!(gaps[0]["protected_by"], "both");
        let gap = gaps[0]["gap_seconds"].as_i64().expect("gap seconds");
        assert!((15 * DAY..=16 * DAY).contains(&gap), "gap {gap}");

        // Day 15: the backend's period is over for everything, k30's date is not.
        advance(&stack, &oss, 15);
        let got = delete_version(&s3, &bucket, "k30", &v30).await;
        assert_eq!((got.status, got.code.as_str()), (403, "AccessDenied"));
        let rows = audit(&stack, &format!("/audit/locks?bucket={bucket}&prefix=k30")).await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0]["protected_by"], "gateway");
        for (key, version) in &versions[1..] {
            let got = delete_version(&s3, &bucket, key, version).await;
            assert!(got.is_ok(), "delete {key} on day 15: {got:?}");
        }

        // Day 31: both are over.
        advance(&stack, &oss, 16);
        let got = delete_version(&s3, &bucket, "k30", &v30).await;
        assert!(got.is_ok(), "delete k30 on day 31: {got:?}");
        assert_eq!(oss.extends(), 0, "no auto-extend configured");
        assert_eq!(oss.period(&bucket), Some(14));
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn auto_extend_raises_the_bucket_period_within_its_cap_and_never_lowers_it() {
    Box::pin(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let oss = OssBackend::start(dir.path()).await;
        let bucket = oss.bucket_with_worm("oss", 14).await;
        let stack = Stack::start_oss(&oss, &[&bucket], Some(60)).await;
        let s3 = stack.gateway();

        put_locked(
            &s3,
            &bucket,
            "k30",
            ObjectLockMode::Compliance,
            in_secs(30 * DAY),
        )
        .await;
        assert_eq!(oss.extends(), 1);
        assert_eq!(oss.period(&bucket), Some(30));

        // Shorter: covered, nothing changes.
        put_locked(
            &s3,
            &bucket,
            "k10",
            ObjectLockMode::Governance,
            in_secs(10 * DAY),
        )
        .await;
        assert_eq!(oss.extends(), 1);
        assert_eq!(oss.period(&bucket), Some(30));

        // Beyond the cap: accepted, enforced by the gateway, and reported as a gap.
        put_locked(
            &s3,
            &bucket,
            "k90",
            ObjectLockMode::Compliance,
            in_secs(90 * DAY),
        )
        .await;
        assert_eq!(oss.period(&bucket), Some(30));
        let gaps = audit(&stack, "/audit/gaps").await;
        let keys: Vec<&str> = gaps.iter().filter_map(|r| r["key"].as_str()).collect();
        assert_eq!(keys, ["k90"]);

        // A later extension of one object raises the period again.
        s3.put_object_retention()
            .bucket(&bucket)
            .key("k10")
            .retention(
                ObjectLockRetention::builder()
                    .mode(ObjectLockRetentionMode::Governance)
                    .retain_until_date(in_secs(45 * DAY))
                    .build(),
            )
            .send()
            .await
            .expect("PutObjectRetention");
        assert_eq!(oss.extends(), 2);
        // 45 days from k10's last modification, in whole days: 46 when a second boundary
        // fell between its upload and the extension (the dates are whole seconds).
        let period = oss.period(&bucket);
        assert!(matches!(period, Some(45 | 46)), "{period:?}");
        let gaps = audit(&stack, "/audit/gaps").await;
        assert_eq!(gaps.len(), 1, "{gaps:?}");

        let (status, text) = admin_get(&stack, "/audit/summary", Some(ADMIN_TOKEN)).await;
        assert_eq!(status, 200);
        let text: String = text.split_whitespace().collect();
        assert!(
            text.contains(&format!("\"backend_period_days\":{}", period.unwrap_or(0))),
            "{text}"
        );
        stack.shutdown().await;
    })
    .await;
}
