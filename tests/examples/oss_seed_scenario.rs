//! The seed scenario, played out and printed: backup software sets 30-day per-object COMPLIANCE
//! locks on an OSS bucket whose WORM period is 14 days, without and with auto-extend.
//!
//! `cargo run -p wormgate-tests --example oss_seed_scenario`
//!
//! OSS is the test stand-in (`wormgate_tests::oss`); the gateway, its index, its admin listener
//! and the S3 client (aws-sdk-s3) are the real ones. Days pass by moving both clocks forward.

use aws_sdk_s3::types::ObjectLockMode;
use chrono::TimeDelta;
use wormgate_tests::locks::{in_secs, outcome, put_locked};
use wormgate_tests::oss::OssBackend;
use wormgate_tests::{ADMIN_TOKEN, Stack};

const DAY: i64 = 86_400;

async fn admin(stack: &Stack, path: &str) -> String {
    stack.admin_get(path, Some(ADMIN_TOKEN)).await.body
}

async fn scenario(auto_extend: Option<u32>) {
    println!("\n=== auto_extend_up_to_days = {auto_extend:?}");
    let dir = tempfile::tempdir().expect("tempdir");
    let oss = OssBackend::start(dir.path()).await;
    let bucket = oss.bucket_with_worm("backups", 14).await;
    println!("OSS: bucket {bucket}, WORM policy Locked, 14 days");

    let stack = Stack::start_oss(&oss, &[&bucket], auto_extend).await;
    let s3 = stack.gateway();
    for key in ["monday.vbk", "tuesday.vib"] {
        put_locked(
            &s3,
            &bucket,
            key,
            ObjectLockMode::Compliance,
            in_secs(30 * DAY),
        )
        .await;
        println!("PUT {key} with COMPLIANCE until now+30d -> 200");
    }
    println!(
        "OSS period now: {:?} days (ExtendBucketWorm calls: {})",
        oss.period(&bucket),
        oss.extends()
    );
    println!(
        "GET /audit/gaps ->\n{}",
        admin(&stack, "/audit/gaps").await.trim_end()
    );
    println!(
        "GET /audit/summary ->\n{}",
        admin(&stack, "/audit/summary").await.trim_end()
    );
    for day in [15, 31] {
        let by = day - if day == 15 { 0 } else { 15 };
        stack.clock.advance(TimeDelta::seconds(by * DAY));
        oss.advance(TimeDelta::seconds(by * DAY));
        let got = outcome(s3.delete_object().bucket(&bucket).key("monday.vbk").send()).await;
        println!(
            "day {day}: DELETE monday.vbk -> {} {}",
            got.status, got.code
        );
        if day == 15 {
            println!(
                "day {day}: GET /audit/locks?prefix=tuesday ->\n{}",
                admin(&stack, "/audit/locks?prefix=tuesday")
                    .await
                    .trim_end()
            );
        }
    }
    stack.shutdown().await;
}

#[tokio::main]
async fn main() {
    Box::pin(scenario(None)).await;
    Box::pin(scenario(Some(45))).await;
}
