//! The admin listener: the token, the audit's rows, filters, formats and pages, the decision
//! log, readiness and the metrics, over a real gateway (`gateway` profile, s3s-fs underneath).

use aws_sdk_s3::types::ObjectLockMode;
use wormgate_tests::locks::{in_secs, lock_bucket, outcome, put_locked};
use wormgate_tests::{ADMIN_TOKEN, Reply, Stack};

const DAY: i64 = 86_400;

async fn get(stack: &Stack, path_and_query: &str, token: Option<&str>) -> Reply {
    stack.admin_get(path_and_query, token).await
}

fn lines(reply: &Reply) -> Vec<serde_json::Value> {
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply
        .body
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn keys(rows: &[serde_json::Value]) -> Vec<String> {
    rows.iter()
        .filter_map(|r| r["key"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn every_route_but_healthz_and_readyz_needs_the_token() {
    let stack = Stack::start().await;
    assert_eq!(get(&stack, "/healthz", None).await.status, 200);
    // Readiness without the token (a probe that carries no secret): the answer, no details.
    let public = get(&stack, "/readyz", None).await;
    assert_eq!(public.status, 200, "{}", public.body);
    let brief: serde_json::Value = serde_json::from_str(&public.body).expect("json");
    assert_eq!(brief, serde_json::json!({ "ready": true }));
    let wrong = get(&stack, "/readyz", Some("not-the-admin-token-at-all")).await;
    assert_eq!(wrong.status, 200, "{}", wrong.body);
    assert!(!wrong.body.contains("checks"), "{}", wrong.body);
    for path in [
        "/metrics",
        "/audit/locks",
        "/audit/gaps",
        "/audit/summary",
        "/audit/events",
    ] {
        assert_eq!(
            get(&stack, path, None).await.status,
            401,
            "{path} without a token"
        );
        let wrong = get(&stack, path, Some("not-the-admin-token-at-all")).await;
        assert_eq!(wrong.status, 401, "{path} with a wrong token");
        assert_eq!(
            wrong.headers.get("www-authenticate").map(|v| v.as_bytes()),
            Some(&b"Bearer"[..])
        );
        assert_ne!(
            get(&stack, path, Some(ADMIN_TOKEN)).await.status,
            401,
            "{path} with the token"
        );
    }
    let ready = get(&stack, "/readyz", Some(ADMIN_TOKEN)).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(ready.body.contains("\"checks\""), "{}", ready.body);
    stack.shutdown().await;
}

#[tokio::test]
async fn the_audit_answers_rows_filters_formats_pages_and_the_decision_log() {
    Box::pin(async {
        let stack = Stack::start().await;
        let s3 = stack.gateway();
        let bucket = lock_bucket(&s3, "audit").await;
        let a1 = put_locked(
            &s3,
            &bucket,
            "a/1",
            ObjectLockMode::Compliance,
            in_secs(10 * DAY),
        )
        .await;
        put_locked(
            &s3,
            &bucket,
            "a/2",
            ObjectLockMode::Governance,
            in_secs(40 * DAY),
        )
        .await;
        put_locked(
            &s3,
            &bucket,
            "b/1",
            ObjectLockMode::Compliance,
            in_secs(100 * DAY),
        )
        .await;

        let all = lines(
            &get(
                &stack,
                &format!("/audit/locks?bucket={bucket}"),
                Some(ADMIN_TOKEN),
            )
            .await,
        );
        assert_eq!(keys(&all), ["a/1", "a/2", "b/1"]);
        let row = &all[0];
        assert_eq!(row["bucket"], bucket.as_str());
        assert_eq!(row["mode"], "COMPLIANCE");
        assert_eq!(row["legal_hold"], false);
        assert_eq!(row["protected_by"], "gateway");
        assert_eq!(row["profile"], "gateway");
        assert_eq!(row["source"], "header");
        assert!(row["backend_floor"].is_null());
        assert!(
            row["retain_until"]
                .as_str()
                .is_some_and(|d| d.ends_with('Z'))
        );

        let a = lines(
            &get(
                &stack,
                &format!("/audit/locks?bucket={bucket}&prefix=a/"),
                Some(ADMIN_TOKEN),
            )
            .await,
        );
        assert_eq!(keys(&a), ["a/1", "a/2"]);
        let before = (chrono::Utc::now() + chrono::TimeDelta::days(20))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let soon = lines(
            &get(
                &stack,
                &format!("/audit/locks?expiring_before={before}"),
                Some(ADMIN_TOKEN),
            )
            .await,
        );
        assert_eq!(keys(&soon), ["a/1"]);
        // With no backend protection at all, the whole of every active lock is a gap.
        let gaps = lines(
            &get(
                &stack,
                &format!("/audit/gaps?bucket={bucket}"),
                Some(ADMIN_TOKEN),
            )
            .await,
        );
        assert_eq!(gaps.len(), 3);
        assert_eq!(
            get(
                &stack,
                "/audit/locks?expiring_before=tomorrow",
                Some(ADMIN_TOKEN)
            )
            .await
            .status,
            400
        );

        let csv = get(
            &stack,
            &format!("/audit/locks?bucket={bucket}&format=csv"),
            Some(ADMIN_TOKEN),
        )
        .await;
        assert_eq!(csv.status, 200);
        assert_eq!(
            csv.headers.get("content-type").map(|v| v.as_bytes()),
            Some(&b"text/csv"[..])
        );
        let csv_lines: Vec<&str> = csv.body.lines().collect();
        assert_eq!(csv_lines.len(), 4, "{}", csv.body);
        assert!(csv_lines[0].starts_with(
            "bucket,key,version_id,mode,retain_until,legal_hold,protected_by,backend_floor,gap"
        ));
        // Lock buckets are versioned: each row names its version.
        let row: Vec<&str> = csv_lines[1].split(',').collect();
        assert_eq!(
            (row[0], row[1], row[3]),
            (bucket.as_str(), "a/1", "COMPLIANCE"),
            "{}",
            csv.body
        );
        assert!(!row[2].is_empty(), "{}", csv.body);

        // Pages: two rows, then the rest from the cursor.
        let first = get(
            &stack,
            &format!("/audit/locks?bucket={bucket}&limit=2"),
            Some(ADMIN_TOKEN),
        )
        .await;
        assert_eq!(keys(&lines(&first)), ["a/1", "a/2"]);
        let cursor = first
            .headers
            .get("x-wormgate-next-cursor")
            .and_then(|v| v.to_str().ok())
            .expect("a cursor")
            .to_owned();
        let second = get(
            &stack,
            &format!("/audit/locks?bucket={bucket}&limit=2&cursor={cursor}"),
            Some(ADMIN_TOKEN),
        )
        .await;
        assert_eq!(keys(&lines(&second)), ["b/1"]);
        assert!(second.headers.get("x-wormgate-next-cursor").is_none());

        // A refusal goes to the decision log, ahead of the allowed decisions.
        let denied = outcome(
            s3.delete_object()
                .bucket(&bucket)
                .key("a/1")
                .set_version_id(a1.clone())
                .send(),
        )
        .await;
        assert_eq!(denied.status, 403);
        let events = lines(&get(&stack, "/audit/events", Some(ADMIN_TOKEN)).await);
        assert_eq!(events[0]["decision"], "denied");
        assert_eq!(events[0]["op"], "DeleteObject");
        assert_eq!(events[0]["key"], "a/1");
        assert_eq!(events[0]["user"], wormgate_tests::ACCESS_KEY);
        assert_eq!(events[0]["reason"], "retention-compliance");
        assert!(
            events
                .iter()
                .skip(1)
                .any(|e| e["decision"] == "allowed" && e["key"] == "b/1")
        );

        let summary = get(&stack, "/audit/summary", Some(ADMIN_TOKEN)).await;
        let summary: serde_json::Value = serde_json::from_str(&summary.body).expect("json");
        let mine = summary
            .as_array()
            .and_then(|a| a.iter().find(|b| b["bucket"] == bucket.as_str()))
            .expect("the bucket's summary");
        assert_eq!(mine["locked_versions"], 3);
        assert_eq!(mine["expiring_within_7_days"], 0);
        assert_eq!(mine["expiring_within_30_days"], 1);
        assert_eq!(mine["gaps"], 3);

        let metrics = get(&stack, "/metrics", Some(ADMIN_TOKEN)).await;
        assert_eq!(metrics.status, 200);
        for want in [
            "wormgate_requests_total{op=\"PutObject\",status=\"200\"} 3",
            "wormgate_requests_total{op=\"DeleteObject\",status=\"403\"} 1",
            "wormgate_denials_total{reason=\"retention-compliance\"} 1",
            "wormgate_locked_versions 3",
            "wormgate_gaps 3",
            "wormgate_backend_latency_seconds_count",
            "wormgate_bytes_in_total",
        ] {
            assert!(
                metrics.body.contains(want),
                "metrics lack {want}:\n{}",
                metrics.body
            );
        }
        stack.shutdown().await;
    })
    .await;
}
