//! The same attacks on every profile: `gateway` over the embedded store, `native` over
//! LocalStack, `bucket-retention` over the OSS stand-in. Each row is one attack of a class
//! (another name for a locked object, an unsigned header, a date read differently, a header
//! dropped on the way, the batch path's record, a conformance point); each cell is the reply
//! and whether the backend still holds what was protected, read from the backend itself.
//! The table is printed (`--nocapture`) and every cell must be safe.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ObjectLockMode;
use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use policy::lock::Profile;
use wormgate_tests::locks::{hold, in_secs, lock_bucket, put_locked};
use wormgate_tests::oss::OssBackend;
use wormgate_tests::{
    ACCESS_KEY, ADMIN_KEY, ADMIN_SECRET, ADMIN_TOKEN, LocalStack, Reply, SECRET_KEY, Stack,
    s3_client,
};

fn md5_b64(body: &str) -> String {
    wormgate_tests::content_md5(body)
}

/// Where the truth of a version's retain-until date and bytes is read: the backend itself (its
/// lock API on `native`; on `gateway` and `bucket-retention` the version's own metadata and the
/// records of its journal, `versions::journal`).
struct Backend {
    client: aws_sdk_s3::Client,
    profile: Profile,
}

impl Backend {
    /// The name the store keeps `key`'s newest version under, and its version id: a lock
    /// bucket of `gateway` or `bucket-retention` is versioned by the gateway
    /// (`versions::layout`); else the key itself.
    async fn newest(&self, bucket: &str, key: &str) -> (String, Option<String>) {
        use wormgate::versions::layout::{self, Kind};
        if self.profile == Profile::Native {
            return (key.to_owned(), None);
        }
        let listed = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(layout::versions_of(key))
            .send()
            .await
            .ok();
        listed
            .and_then(|l| {
                l.contents().iter().find_map(|o| {
                    let name = o.key()?;
                    let (_, id) = layout::parse_version_name(name)?;
                    (id.kind() == Kind::Object)
                        .then(|| (name.to_owned(), Some(id.as_str().to_owned())))
                })
            })
            .unwrap_or_else(|| (key.to_owned(), None))
    }

    async fn name(&self, bucket: &str, key: &str) -> String {
        self.newest(bucket, key).await.0
    }

    async fn until(&self, bucket: &str, key: &str) -> Option<DateTime<Utc>> {
        use wormgate::versions::journal;
        if self.profile == Profile::Native {
            let r = self
                .client
                .get_object_retention()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .ok()?;
            let d = r.retention()?.retain_until_date()?;
            return DateTime::from_timestamp_millis(d.to_millis().ok()?);
        }
        let (name, version) = self.newest(bucket, key).await;
        let head = self
            .client
            .head_object()
            .bucket(bucket)
            .key(name)
            .send()
            .await
            .ok()?;
        let base = head
            .metadata()
            .and_then(|m| m.get("wormgate-retain-until"))
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|d| policy::lock::ObjectLock {
                retention: Some(policy::lock::Retention {
                    mode: policy::lock::RetentionMode::Compliance,
                    until: d.with_timezone(&Utc),
                }),
                legal_hold: policy::lock::LegalHold::Off,
            })
            .unwrap_or_default();
        let prefix = journal::journal_of(key, version.as_deref());
        let records = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(&prefix)
            .send()
            .await
            .ok()?;
        let entries: Option<Vec<_>> = records
            .contents()
            .iter()
            .map(|o| journal::parse_entry(&prefix, o.key()?))
            .collect();
        journal::fold(base, &entries?)
            .lock
            .retention
            .map(|r| r.until)
    }

    async fn bytes(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(self.name(bucket, key).await)
            .send()
            .await
            .ok()?;
        Some(out.body.collect().await.ok()?.into_bytes().to_vec())
    }
}

/// One cell: the reply, and whether what was protected is intact on the backend.
struct Cell {
    reply: String,
    safe: bool,
}

fn cell(reply: &Reply, safe: bool, note: &str) -> Cell {
    let code = if reply.code().is_empty() {
        String::new()
    } else {
        format!(" {}", reply.code())
    };
    Cell {
        reply: format!("{}{code}{note}", reply.status),
        safe,
    }
}

/// A date `before` the instant, written in a `+14:00` offset: its text reads later than the
/// instant's UTC text.
fn plus14(instant: DateTime<Utc>) -> String {
    let offset = FixedOffset::east_opt(14 * 3600).expect("offset");
    instant
        .with_timezone(&offset)
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

async fn attack_rows(
    stack: &Stack,
    backend: &Backend,
    b: &str,
    plain: Option<&str>,
) -> Vec<(&'static str, Cell)> {
    let agent = stack.gateway();
    let admin = stack.admin();
    let agent_keys = (ACCESS_KEY, SECRET_KEY);
    let admin_keys = (ADMIN_KEY, ADMIN_SECRET);
    // Each attack has a version of its own, so that one row's damage does not decide the next.
    for key in ["K", "K1", "K2", "K3"] {
        put_locked(&agent, b, key, ObjectLockMode::Compliance, in_secs(86_400)).await;
    }
    for key in ["G", "G1"] {
        put_locked(&agent, b, key, ObjectLockMode::Governance, in_secs(86_400)).await;
    }
    let k_until = backend
        .until(b, "K")
        .await
        .expect("K's lock on the backend");
    let g_until = backend
        .until(b, "G")
        .await
        .expect("G's lock on the backend");
    let k_whole = |bytes: Option<Vec<u8>>, until: Option<DateTime<Utc>>| {
        bytes.as_deref() == Some(b"locked backup".as_slice()) && until >= Some(k_until)
    };
    let mut rows = Vec::new();

    let r = stack
        .hand_signed(admin_keys, "DELETE", &format!("/{b}/./K1"), &[], &[], "")
        .await;
    let safe = k_whole(backend.bytes(b, "K1").await, backend.until(b, "K1").await);
    rows.push(("1 identity: DELETE /b/./K (admin)", cell(&r, safe, "")));

    let h = md5_b64("ransom");
    let r = stack
        .hand_signed(
            agent_keys,
            "PUT",
            &format!("/{b}/y/../K2"),
            &[("content-md5", &h)],
            &[],
            "ransom",
        )
        .await;
    let safe = k_whole(backend.bytes(b, "K2").await, backend.until(b, "K2").await);
    rows.push(("1 identity: PUT /b/y/../K", cell(&r, safe, "")));

    let del = "<Delete><Object><Key>./K3</Key></Object></Delete>";
    let r = stack
        .hand_signed(
            admin_keys,
            "POST",
            &format!("/{b}?delete"),
            &[("content-md5", &md5_b64(del))],
            &[],
            del,
        )
        .await;
    let per_key = if r.body.contains("<Error>") {
        " (key refused)"
    } else {
        " (key deleted)"
    };
    let safe = k_whole(backend.bytes(b, "K3").await, backend.until(b, "K3").await);
    rows.push((
        "1 identity: DeleteObjects key ./K (admin)",
        cell(&r, safe, per_key),
    ));

    // The admin asks to extend G; whoever holds the request adds the bypass and a shorter date
    // would need a new signature, so the attack here is the header alone on a clearing body.
    let clear = "<Retention></Retention>";
    let r = stack
        .hand_signed(
            admin_keys,
            "PUT",
            &format!("/{b}/G1?retention"),
            &[("content-md5", &md5_b64(clear))],
            &[("x-amz-bypass-governance-retention", "true")],
            clear,
        )
        .await;
    let safe = backend.until(b, "G1").await >= Some(g_until);
    rows.push((
        "2 signature: unsigned bypass header added to an admin's retention clear",
        cell(&r, safe, ""),
    ));

    let shorter = plus14(k_until - TimeDelta::hours(1));
    let body = format!(
        "<Retention><Mode>COMPLIANCE</Mode><RetainUntilDate>{shorter}</RetainUntilDate></Retention>"
    );
    let r = stack
        .hand_signed(
            agent_keys,
            "PUT",
            &format!("/{b}/K?retention"),
            &[("content-md5", &md5_b64(&body))],
            &[],
            &body,
        )
        .await;
    let safe = backend.until(b, "K").await >= Some(k_until);
    rows.push((
        "3 dates: COMPLIANCE shortened by 1 h, written with +14:00",
        cell(&r, safe, ""),
    ));

    let shorter = plus14(g_until - TimeDelta::hours(1));
    let body = format!(
        "<Retention><Mode>GOVERNANCE</Mode><RetainUntilDate>{shorter}</RetainUntilDate></Retention>"
    );
    let r = stack
        .hand_signed(
            agent_keys,
            "PUT",
            &format!("/{b}/G?retention"),
            &[
                ("content-md5", &md5_b64(&body)),
                ("x-amz-bypass-governance-retention", "true"),
            ],
            &[],
            &body,
        )
        .await;
    let safe = backend.until(b, "G").await >= Some(g_until);
    rows.push((
        "3 dates: a writer (no bypass right) shortens GOVERNANCE, +14:00 and the bypass header",
        cell(&r, safe, ""),
    ));

    let asked = (Utc::now() + TimeDelta::days(2))
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let want = DateTime::parse_from_rfc3339(&format!("{asked}-12:00"))
        .expect("date")
        .with_timezone(&Utc);
    let text = format!("{asked}-12:00");
    let r = stack
        .hand_signed(
            agent_keys,
            "PUT",
            &format!("/{b}/offset"),
            &[
                ("x-amz-object-lock-mode", "GOVERNANCE"),
                ("x-amz-object-lock-retain-until-date", &text),
                ("content-md5", &md5_b64("data")),
            ],
            &[],
            "data",
        )
        .await;
    let stored = backend.until(b, "offset").await;
    let safe = stored.is_some_and(|s| (s - want).num_seconds().abs() < 1);
    let note = match stored {
        Some(s) if s < want => format!(" (stored {}h short)", (want - s).num_hours()),
        Some(_) => " (stored as asked)".to_owned(),
        None => " (no lock stored)".to_owned(),
    };
    rows.push((
        "3 dates: lock date -12:00 stored as its instant",
        cell(&r, safe, &note),
    ));

    let want = (k_until + TimeDelta::days(2)).with_timezone(&Utc);
    let minus12 = want
        .with_timezone(&FixedOffset::west_opt(12 * 3600).expect("offset"))
        .format("%Y-%m-%dT%H:%M:%S%.3f%:z")
        .to_string();
    let body = format!(
        "<Retention><Mode>COMPLIANCE</Mode><RetainUntilDate>{minus12}</RetainUntilDate></Retention>"
    );
    let r = stack
        .hand_signed(
            agent_keys,
            "PUT",
            &format!("/{b}/K?retention"),
            &[("content-md5", &md5_b64(&body))],
            &[],
            &body,
        )
        .await;
    let stored = backend.until(b, "K").await;
    let safe = stored.is_some_and(|s| s >= want);
    let note = match stored {
        Some(s) if s < want => format!(" (stored {}h short)", (want - s).num_hours()),
        Some(_) => " (stored as asked)".to_owned(),
        None => " (no lock)".to_owned(),
    };
    rows.push((
        "3 dates: retention extended, date written with -12:00",
        cell(&r, safe, &note),
    ));

    let until = (Utc::now() + TimeDelta::days(2))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let r = stack
        .hand_signed(
            agent_keys,
            "PUT",
            &format!("/{b}/hop"),
            &[
                (
                    "connection",
                    "keep-alive, x-amz-object-lock-mode, x-amz-object-lock-retain-until-date",
                ),
                ("x-amz-object-lock-mode", "COMPLIANCE"),
                ("x-amz-object-lock-retain-until-date", &until),
                ("content-md5", &md5_b64("data")),
            ],
            &[],
            "data",
        )
        .await;
    // Safe: refused, or stored with the lock that was acknowledged.
    let locked_on_backend = backend.until(b, "hop").await.is_some();
    let safe = r.status >= 400 || locked_on_backend;
    let note = if r.status < 300 && !locked_on_backend {
        " (acknowledged, backend has no lock)"
    } else {
        ""
    };
    rows.push((
        "4 forwarded: lock headers named in Connection",
        cell(&r, safe, note),
    ));

    let del = "<Delete><Object><Key>K</Key></Object></Delete>";
    let r = stack
        .hand_signed(
            agent_keys,
            "POST",
            &format!("/{b}?delete"),
            &[("content-md5", &md5_b64(del))],
            &[],
            del,
        )
        .await;
    let events = stack.admin_get("/audit/events", Some(ADMIN_TOKEN)).await;
    // Recorded per key, whatever the answer (on `native` a delete without a version id
    // makes a delete marker: allowed).
    let recorded = events
        .body
        .lines()
        .any(|l| l.contains("\"op\":\"DeleteObjects\"") && l.contains("\"key\":\"K\""));
    let note = if recorded {
        " (recorded per key)"
    } else {
        " (not in /audit/events)"
    };
    rows.push((
        "7 audit: DeleteObjects of a locked key",
        cell(&r, recorded, note),
    ));

    agent
        .put_object()
        .bucket(b)
        .key("h")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("put h");
    for on in [true, false] {
        admin
            .put_object_legal_hold()
            .bucket(b)
            .key("h")
            .legal_hold(hold(on))
            .send()
            .await
            .expect("legal hold");
    }
    let r = stack
        .hand_signed(
            admin_keys,
            "GET",
            &format!("/{b}/h?legal-hold"),
            &[],
            &[],
            "",
        )
        .await;
    let off = r.body.contains("<Status>OFF</Status>");
    rows.push((
        "8 conformance: GetObjectLegalHold after ON then OFF",
        cell(&r, off, ""),
    ));

    if let Some(plain) = plain {
        let del = "<Delete><Object><Key>x</Key></Object></Delete>";
        let r = stack
            .hand_signed(
                admin_keys,
                "POST",
                &format!("/{plain}?delete"),
                &[
                    ("content-md5", &md5_b64(del)),
                    ("x-amz-bypass-governance-retention", "true"),
                ],
                &[],
                del,
            )
            .await;
        rows.push((
            "8 conformance: DeleteObjects with bypass on a bucket without lock",
            cell(&r, r.status == 400, ""),
        ));
    }
    rows
}

fn print_table(profile: &str, rows: &[(&'static str, Cell)]) {
    eprintln!("| {profile} | reply | protected data intact |");
    eprintln!("|---|---|---|");
    for (name, c) in rows {
        eprintln!(
            "| {name} | {} | {} |",
            c.reply,
            if c.safe { "yes" } else { "NO" }
        );
    }
}

fn assert_safe(profile: &str, rows: &[(&'static str, Cell)]) {
    print_table(profile, rows);
    for (name, c) in rows {
        assert!(c.safe, "{profile}: {name}: {}", c.reply);
    }
}

#[tokio::test]
async fn gateway_profile_over_the_embedded_store() {
    let stack = Stack::start().await;
    let b = lock_bucket(&stack.gateway(), "table").await;
    let plain = stack.new_bucket("table-plain").await;
    let backend = Backend {
        client: stack.direct(),
        profile: Profile::Gateway,
    };
    let rows = attack_rows(&stack, &backend, &b, Some(&plain)).await;
    assert_safe("gateway over the embedded store", &rows);
}

#[tokio::test]
async fn native_profile_over_localstack() {
    Box::pin(async {
        let localstack = LocalStack::start().await;
        let stack = Stack::start_remote(localstack.backend(), Profile::Native).await;
        let admin = stack.admin();
        let b = lock_bucket(&admin, "table").await;
        let plain = stack.new_bucket("table-plain").await;
        let url = format!("http://127.0.0.1:{}", localstack.port);
        let backend = Backend {
            client: s3_client(&url, "direct", "direct-secret"),
            profile: Profile::Native,
        };
        let rows = attack_rows(&stack, &backend, &b, Some(&plain)).await;
        assert_safe("native over LocalStack", &rows);
    })
    .await;
}

#[tokio::test]
async fn bucket_retention_profile_over_the_oss_stand_in() {
    Box::pin(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let oss = OssBackend::start(dir.path()).await;
        let b = oss.bucket_with_worm("table", 1).await;
        let stack = Stack::start_oss(&oss, &[&b], None).await;
        let backend = Backend {
            client: s3_client(
                &oss.endpoint(),
                &oss.store.access_key,
                oss.store.secret_key.expose(),
            ),
            profile: Profile::BucketRetention,
        };
        let rows = attack_rows(&stack, &backend, &b, None).await;
        assert_safe("bucket-retention over the OSS stand-in", &rows);
    })
    .await;
}
