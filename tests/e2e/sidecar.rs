//! `wormgate serve` as the process a sidecar runs: signals, a clock moved with faketime, kill -9
//! in the middle of a backup. The store behind it is s3s-fs in this test process, at the real
//! time; the gateway is the real binary (`cargo build -p wormgate` first).

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ObjectLockMode, ObjectLockRetentionMode};
use chrono::TimeDelta;
use wormgate_tests::locks::{default_retention, in_secs, lock_bucket, outcome, put_locked};
use wormgate_tests::process::{self, Gateway, Store, client_at, metric};
use wormgate_tests::{ACCESS_KEY, ADMIN_KEY, ADMIN_SECRET, SECRET_KEY};

const YEAR: i64 = 365;

/// The host clock moved a year forward under the gateway (and under a client that signs to
/// match it): every lock that "ended" by that clock is still refused, because the backend's
/// `Date` disagrees. Then the clock set a year back: time holds at the persisted high-water
/// mark, so a default retention still runs from the real date.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_moved_a_year_either_way_unlocks_nothing_early() {
    Box::pin(async {
        let dir = tempfile::tempdir().expect("tempdir");
        // The store accepts any signing time, so that every refusal seen is the gateway's own.
        let store = Store::start(
            &dir.path().join("store"),
            "127.0.0.1:0".parse().expect("addr"),
            u32::MAX,
        )
        .await;
        let config = process::write_config(dir.path(), &store.url(), "");

        // Real time: a bucket with locks of 2 days and of 2 years.
        let mut gw = Gateway::start(&config, &[]).await;
        let agent = gw.client();
        let bucket = lock_bucket(&agent, "clock").await;
        put_locked(
            &agent,
            &bucket,
            "two-days",
            ObjectLockMode::Compliance,
            in_secs(2 * 86_400),
        )
        .await;
        put_locked(
            &agent,
            &bucket,
            "two-years",
            ObjectLockMode::Compliance,
            in_secs(2 * YEAR * 86_400),
        )
        .await;
        let admin = client_at(&gw.url, (ADMIN_KEY, ADMIN_SECRET), TimeDelta::zero());
        admin
            .put_object_lock_configuration()
            .bucket(&bucket)
            .object_lock_configuration(default_retention(ObjectLockRetentionMode::Governance, 1))
            .send()
            .await
            .expect("default retention");
        let got = outcome(agent.delete_object().bucket(&bucket).key("two-days").send()).await;
        assert_eq!(got.status, 403, "{got:?}");
        gw.signal("TERM");
        assert_eq!(
            gw.wait(Duration::from_secs(30)).await.map(|s| s.code()),
            Some(Some(0))
        );

        // A year ahead: the 2-day lock has "ended" by the gateway's clock.
        let mut gw = Gateway::start(&config, &process::faketime("+365d")).await;
        let ahead = TimeDelta::days(YEAR);
        let agent = client_at(&gw.url, (ACCESS_KEY, SECRET_KEY), ahead);
        let admin = client_at(&gw.url, (ADMIN_KEY, ADMIN_SECRET), ahead);
        let mut refused = 0;
        let attempts = [
            (
                "delete",
                outcome(agent.delete_object().bucket(&bucket).key("two-days").send()).await,
            ),
            (
                "overwrite",
                outcome(
                    agent
                        .put_object()
                        .bucket(&bucket)
                        .key("two-days")
                        .body(ByteStream::from_static(b"ransom"))
                        .send(),
                )
                .await,
            ),
            (
                "delete as admin",
                outcome(admin.delete_object().bucket(&bucket).key("two-days").send()).await,
            ),
            (
                "batch delete",
                outcome(
                    admin
                        .delete_objects()
                        .bucket(&bucket)
                        .delete(
                            aws_sdk_s3::types::Delete::builder()
                                .objects(
                                    aws_sdk_s3::types::ObjectIdentifier::builder()
                                        .key("two-days")
                                        .build()
                                        .expect("id"),
                                )
                                .build()
                                .expect("delete"),
                        )
                        .send(),
                )
                .await,
            ),
        ];
        for (what, got) in &attempts {
            if *what == "batch delete" {
                // 200 with the key refused inside; the object must still be there (below).
                assert!(got.is_ok(), "{what}: {got:?}");
                continue;
            }
            assert_eq!(
                (got.status, got.code.as_str()),
                (503, "ServiceUnavailable"),
                "{what} a year ahead: {got:?}"
            );
            refused += 1;
        }
        // The 2-year lock is refused by the rules themselves, clock or not.
        let got = outcome(
            agent
                .delete_object()
                .bucket(&bucket)
                .key("two-years")
                .send(),
        )
        .await;
        assert_eq!((got.status, got.code.as_str()), (403, "AccessDenied"));
        let metrics = gw.admin_get("/metrics").await;
        assert!(
            metric(&metrics.body, "wormgate_clock_refusals_total") >= f64::from(refused),
            "{}",
            metrics.body
        );
        assert!(
            gw.log_text()
                .contains("the gateway's clock disagrees with the backend's Date"),
            "no log line"
        );
        gw.signal("TERM");
        assert_eq!(
            gw.wait(Duration::from_secs(30)).await.map(|s| s.code()),
            Some(Some(0))
        );

        // Back at the real time: nothing was lost, and the 2-day lock still holds.
        let gw = Gateway::start(&config, &[]).await;
        let agent = gw.client();
        for key in ["two-days", "two-years"] {
            agent
                .head_object()
                .bucket(&bucket)
                .key(key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{key} is gone: {e:?}"));
        }
        let got = outcome(agent.delete_object().bucket(&bucket).key("two-days").send()).await;
        assert_eq!(got.status, 403, "{got:?}");
        // Let the high-water mark be written (every 5 s, and at shutdown).
        let mut gw = gw;
        gw.signal("TERM");
        assert_eq!(
            gw.wait(Duration::from_secs(30)).await.map(|s| s.code()),
            Some(Some(0))
        );
        let mark =
            std::fs::read_to_string(dir.path().join("index/clock-high-water")).expect("mark");
        let mark = chrono::DateTime::parse_from_rfc3339(mark.trim())
            .expect("mark date")
            .with_timezone(&chrono::Utc);
        let real = chrono::Utc::now();
        assert!(
            real - mark < TimeDelta::minutes(5),
            "mark {mark} far behind {real}"
        );
        assert!(mark <= real, "mark {mark} ahead of {real}");

        // A year back: the default retention (1 day) runs from the mark, not from last year.
        let mut gw = Gateway::start(&config, &process::faketime("-365d")).await;
        let agent = client_at(&gw.url, (ACCESS_KEY, SECRET_KEY), -TimeDelta::days(YEAR));
        agent
            .put_object()
            .bucket(&bucket)
            .key("written-while-behind")
            .body(ByteStream::from_static(b"backup"))
            .send()
            .await
            .expect("put while the clock is behind");
        let retention = agent
            .get_object_retention()
            .bucket(&bucket)
            .key("written-while-behind")
            .send()
            .await
            .expect("retention")
            .retention
            .and_then(|r| r.retain_until_date)
            .expect("a retain-until date");
        let until = chrono::DateTime::from_timestamp(retention.secs(), 0).expect("date");
        assert!(
            until >= mark + TimeDelta::days(1) - TimeDelta::seconds(1),
            "retain-until {until} runs from the host's clock, not from the mark {mark}"
        );
        gw.signal("TERM");
        assert_eq!(
            gw.wait(Duration::from_secs(30)).await.map(|s| s.code()),
            Some(Some(0))
        );
    })
    .await;
}

/// SIGTERM in the middle of an upload: no new connections, the upload finishes, the process
/// exits 0. A second signal ends a slow drain at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_uploads_and_a_second_signal_exits_at_once() {
    Box::pin(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::start(
            &dir.path().join("store"),
            "127.0.0.1:0".parse().expect("addr"),
            900,
        )
        .await;
        let config = process::write_config(dir.path(), &store.url(), "");
        for second_signal in [false, true] {
            let mut gw = Gateway::start(&config, &[]).await;
            let agent = gw.client();
            let bucket = lock_bucket(&agent, "drain").await;

            // An upload of 4 MiB whose second half is held back until after SIGTERM.
            let (tx, rx) = tokio::sync::mpsc::channel::<
                Result<http_body::Frame<bytes::Bytes>, std::convert::Infallible>,
            >(4);
            let body = http_body_util::StreamBody::new(tokio_stream_of(rx));
            let half = bytes::Bytes::from(vec![7u8; 2 << 20]);
            let url = format!("{}/{bucket}/in-flight.bin", gw.url);
            let upload = tokio::spawn(async move {
                wormgate_tests::signed_request(
                    "PUT",
                    &url,
                    &[("content-length", "4194304")],
                    http_body_util::BodyExt::boxed(body),
                    ACCESS_KEY,
                    SECRET_KEY,
                )
                .await
            });
            tx.send(Ok(http_body::Frame::data(half.clone())))
                .await
                .expect("first half");
            tokio::time::sleep(Duration::from_millis(300)).await;
            gw.signal("TERM");
            tokio::time::sleep(Duration::from_millis(300)).await;
            // No new connections once the signal is in.
            let addr = gw.url.trim_start_matches("http://").to_owned();
            assert!(
                tokio::net::TcpStream::connect(&addr).await.is_err(),
                "the listener still accepts after SIGTERM"
            );
            if second_signal {
                gw.signal("TERM");
                let status = gw
                    .wait(Duration::from_secs(5))
                    .await
                    .expect("exits at once");
                assert!(!status.success(), "a forced stop says so: {status:?}");
                drop(tx);
                let _ = upload.await;
                // The index is whole: the next start opens it and serves.
                let mut gw = Gateway::start(&config, &[]).await;
                gw.client()
                    .list_buckets()
                    .send()
                    .await
                    .expect("serves after a forced stop");
                gw.signal("TERM");
                assert!(
                    gw.wait(Duration::from_secs(30))
                        .await
                        .is_some_and(|s| s.success())
                );
            } else {
                tx.send(Ok(http_body::Frame::data(half)))
                    .await
                    .expect("second half");
                drop(tx);
                let reply = upload.await.expect("upload task");
                assert_eq!(reply.status, 200, "{}", reply.body);
                let status = gw.wait(Duration::from_secs(30)).await.expect("exits");
                assert!(status.success(), "{status:?}\n{}", gw.log_text());
                assert!(
                    gw.log_text().contains("lock index flushed"),
                    "{}",
                    gw.log_text()
                );
            }
        }
    })
    .await;
}

fn tokio_stream_of<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
