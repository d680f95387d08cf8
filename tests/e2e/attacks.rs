//! The attacker's tests: every way found to walk around a lock, tried against a real gateway in
//! front of the real embedded store (s3s-fs), with a backup user's or an administrator's keys.
//! Each test checks the outcome on the store itself (bytes and lock metadata unchanged), not
//! only the gateway's reply.
//!
//! The property test at the end drives generated keys (dot and empty segments, encodings,
//! separators, unicode) through every request that names an object and checks that no
//! locked object changed and nothing outside the request's bucket changed.

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ObjectLockMode;
use bytes::Bytes;
use proptest::prelude::*;
use wormgate_tests::locks::{backend_name, hold, in_secs, lock_bucket, put_locked};
use wormgate_tests::{
    ACCESS_KEY, ADMIN_KEY, ADMIN_SECRET, ADMIN_TOKEN, Reply, SCOPED_BUCKET, SCOPED_KEY,
    SCOPED_SECRET, SECRET_KEY, Stack, empty_raw_body, full,
};

/// What the store holds for one object: its bytes and its reserved lock metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    bytes: Vec<u8>,
    lock: Vec<(String, String)>,
}

/// What the store holds for `key`: in a versioned lock bucket its newest version or delete
/// marker (the gateway's own name for it), else the object at the key itself.
async fn stored(stack: &Stack, bucket: &str, key: &str) -> Option<Stored> {
    let direct = stack.direct();
    let newest = direct
        .list_objects_v2()
        .bucket(bucket)
        .prefix(wormgate::versions::layout::versions_of(key))
        .max_keys(1)
        .send()
        .await
        .ok()
        .and_then(|l| {
            l.contents()
                .first()
                .and_then(|o| o.key().map(str::to_owned))
        });
    let name = newest.unwrap_or_else(|| key.to_owned());
    let out = direct
        .get_object()
        .bucket(bucket)
        .key(name)
        .send()
        .await
        .ok()?;
    let mut lock: Vec<(String, String)> = out
        .metadata()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.starts_with("wormgate-"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    lock.sort();
    let bytes = out.body.collect().await.ok()?.into_bytes().to_vec();
    Some(Stored { bytes, lock })
}

async fn raw(
    stack: &Stack,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    stack
        .hand_signed((ACCESS_KEY, SECRET_KEY), method, path, headers, &[], body)
        .await
}

/// A lock bucket holding `K` and `d/K` (COMPLIANCE, a day), and a second bucket with a secret;
/// the version ids of `K` and `d/K`.
async fn protected(stack: &Stack) -> (String, String, [String; 2]) {
    let agent = stack.gateway();
    let bucket = lock_bucket(&agent, "attack").await;
    let mut versions = [String::new(), String::new()];
    for (i, key) in ["K", "d/K"].into_iter().enumerate() {
        versions[i] = put_locked(
            &agent,
            &bucket,
            key,
            ObjectLockMode::Compliance,
            in_secs(86_400),
        )
        .await
        .expect("a version");
    }
    let other = stack.new_bucket("other").await;
    agent
        .put_object()
        .bucket(&other)
        .key("secret")
        .body(ByteStream::from_static(b"secret"))
        .send()
        .await
        .expect("put secret");
    (bucket, other, versions)
}

/// A request an attacker sends: method, path, extra headers, and the error code it must get.
type Attempt<'a> = (&'a str, String, Vec<(&'a str, String)>, &'a str);

#[tokio::test]
async fn another_name_for_a_locked_object_is_refused() {
    let stack = Stack::start().await;
    let (b, other, _) = protected(&stack).await;
    let before_k = stored(&stack, &b, "K").await.expect("K");
    let before_dk = stored(&stack, &b, "d/K").await.expect("d/K");
    assert!(!before_k.lock.is_empty(), "K carries its lock on the store");

    let cases: Vec<Attempt> = vec![
        ("DELETE", format!("/{b}/./K"), vec![], "InvalidArgument"),
        ("DELETE", format!("/{b}/%2E/K"), vec![], "InvalidArgument"),
        ("PUT", format!("/{b}/y/../K"), vec![], "InvalidArgument"),
        ("DELETE", format!("/{b}/d//K"), vec![], "InvalidArgument"),
        ("DELETE", format!("/{b}/d/%2FK"), vec![], "InvalidArgument"),
        (
            "PUT",
            format!("/{b}/../{other}/secret"),
            vec![],
            "InvalidArgument",
        ),
        // The store's own bookkeeping beside the buckets.
        (
            "PUT",
            format!("/{b}/../.bucket-x.object-y.metadata.json"),
            vec![],
            "InvalidArgument",
        ),
        ("PUT", "/%2E%2E/K".to_owned(), vec![], "InvalidBucketName"),
        (
            "PUT",
            "/.bucket-x/K".to_owned(),
            vec![],
            "InvalidBucketName",
        ),
        // A store's own API under a bucket-like path, reached with the gateway's keys.
        (
            "GET",
            "/minio/admin/v3/info".to_owned(),
            vec![],
            "InvalidBucketName",
        ),
        (
            "PUT",
            format!("/{b}/copy"),
            vec![("x-amz-copy-source", format!("{other}/../{b}/K"))],
            "InvalidArgument",
        ),
        (
            "PUT",
            format!("/{b}/copy"),
            vec![("x-amz-copy-source", format!("/{b}/./K"))],
            "InvalidArgument",
        ),
    ];
    for (method, path, headers, code) in &cases {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let got = raw(
            &stack,
            method,
            path,
            &h,
            if *method == "PUT" { "ransom" } else { "" },
        )
        .await;
        assert_eq!(
            (got.status, got.code()),
            (400, *code),
            "{method} {path}: {}",
            got.body
        );
    }
    // A user scoped to one bucket reads nothing of another through `..`.
    let got = stack
        .hand_signed(
            (SCOPED_KEY, SCOPED_SECRET),
            "GET",
            &format!("/{SCOPED_BUCKET}/../{other}/secret"),
            &[],
            &[],
            "",
        )
        .await;
    assert_eq!(got.status, 400, "{}", got.body);
    assert!(!got.body.contains("secret</"), "{}", got.body);

    // DeleteObjects: such a key is refused on its own, the batch goes on.
    let delete = "<Delete><Object><Key>./K</Key></Object><Object><Key>d//K</Key></Object><Object><Key>free</Key></Object></Delete>";
    let got = raw(
        &stack,
        "POST",
        &format!("/{b}?delete"),
        &[("content-md5", &md5_b64(delete))],
        delete,
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(
        got.body.matches("<Code>InvalidArgument</Code>").count(),
        2,
        "{}",
        got.body
    );

    // Every such refusal is in the decision log, with the user and what was asked for.
    let events = stack.admin_get("/audit/events", Some(ADMIN_TOKEN)).await;
    let unsafe_names = events
        .body
        .lines()
        .filter(|l| l.contains("\"reason\":\"unsafe-name\"") && l.contains("\"denied\""))
        .count();
    // The seven keys with dot or empty segments and the two batch keys at least (s3s refuses
    // some bucket names itself, before the gateway sees the request).
    assert!(unsafe_names >= 9, "{unsafe_names}: {}", events.body);
    assert!(
        events
            .body
            .lines()
            .any(|l| l.contains(SCOPED_KEY) && l.contains("\"denied\"")),
        "{}",
        events.body
    );
    assert_eq!(stored(&stack, &b, "K").await, Some(before_k), "K changed");
    assert_eq!(
        stored(&stack, &b, "d/K").await,
        Some(before_dk),
        "d/K changed"
    );
    assert_eq!(
        stored(&stack, &other, "secret").await.map(|s| s.bytes),
        Some(b"secret".to_vec())
    );
}

/// The gateway's own folder (versions, delete markers, their records) is out of every client's
/// reach: placed there directly on the store, a record can be neither read, overwritten,
/// deleted, copied from nor batch-deleted through the gateway, by a user or an administrator.
#[tokio::test]
async fn the_gateways_own_folder_is_out_of_reach() {
    let stack = Stack::start().await;
    let (bucket, _, _) = protected(&stack).await;
    let record = ".wormgate/v/K!0000000000000000000000000o";
    stack
        .direct()
        .put_object()
        .bucket(&bucket)
        .key(record)
        .body(ByteStream::from_static(b"record"))
        .send()
        .await
        .expect("a record on the store");
    let before = stored(&stack, &bucket, record).await;
    assert!(before.is_some());
    let del = format!("<Delete><Object><Key>{record}</Key></Object></Delete>");
    let attempts: Vec<Attempt<'_>> = vec![
        ("GET", format!("/{bucket}/{record}"), vec![], ""),
        ("HEAD", format!("/{bucket}/.wormgate"), vec![], ""),
        (
            "PUT",
            format!("/{bucket}/{record}"),
            vec![("content-md5", md5_b64("x"))],
            "x",
        ),
        ("DELETE", format!("/{bucket}/{record}"), vec![], ""),
        ("DELETE", format!("/{bucket}/%2Ewormgate/v/K"), vec![], ""),
        (
            "PUT",
            format!("/{bucket}/copy"),
            vec![("x-amz-copy-source", format!("/{bucket}/{record}"))],
            "",
        ),
        (
            "POST",
            format!("/{bucket}?delete"),
            vec![("content-md5", md5_b64(&del))],
            del.as_str(),
        ),
    ];
    for keys in [(ACCESS_KEY, SECRET_KEY), (ADMIN_KEY, ADMIN_SECRET)] {
        for (method, path, headers, body) in &attempts {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let got = stack
                .hand_signed(keys, method, path, &headers, &[], body)
                .await;
            if path.ends_with("?delete") {
                assert!(
                    got.body.contains("AccessDenied"),
                    "{method} {path}: {}",
                    got.body
                );
            } else if path.ends_with("/copy") {
                // The copy source is a header: refused as a bad argument, before any decision.
                assert_eq!(got.status, 400, "{method} {path}: {}", got.body);
                assert!(got.body.contains(".wormgate/"), "{}", got.body);
            } else {
                assert_eq!(got.status, 403, "{method} {path}: {}", got.body);
            }
        }
    }
    assert_eq!(stored(&stack, &bucket, record).await, before);
    assert_eq!(stored(&stack, &bucket, "copy").await, None);
}

/// A multipart upload cannot be pointed at an existing version: the upload id clients see
/// carries its version, bound to it by a tag only the gateway can make. An upload id naming a
/// locked version instead (the tag kept, dropped or made up) is no upload at all.
#[tokio::test]
async fn an_upload_cannot_be_aimed_at_a_locked_version() {
    let stack = Stack::start().await;
    let (b, _, [vk, _]) = protected(&stack).await;
    let agent = stack.gateway();
    let before = stored(&stack, &b, &backend_name("K", Some(&vk))).await;
    assert!(before.is_some());
    let upload = agent
        .create_multipart_upload()
        .bucket(&b)
        .key("K")
        .send()
        .await
        .expect("an upload");
    let id = upload.upload_id().expect("an upload id").to_owned();
    assert_eq!(
        upload.key(),
        Some("K"),
        "the client's key, not the backend's name"
    );
    let part = agent
        .upload_part()
        .bucket(&b)
        .key("K")
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from_static(b"ransom"))
        .send()
        .await
        .expect("a part");
    let mut pieces = id.splitn(3, '.');
    let (mine, tag, backend) = (
        pieces.next().expect("version"),
        pieces.next().expect("tag"),
        pieces.next().expect("backend id"),
    );
    assert_ne!(mine, vk);
    let forged = [
        format!("{vk}.{tag}.{backend}"),
        format!("{vk}.{backend}"),
        format!("{vk}.{}.{backend}", "0".repeat(32)),
        format!("{mine}.{tag}.{backend}x"),
    ];
    let parts = aws_sdk_s3::types::CompletedMultipartUpload::builder()
        .parts(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(1)
                .set_e_tag(part.e_tag().map(str::to_owned))
                .build(),
        )
        .build();
    for f in &forged {
        let got = wormgate_tests::locks::outcome(
            agent
                .complete_multipart_upload()
                .bucket(&b)
                .key("K")
                .upload_id(f)
                .multipart_upload(parts.clone())
                .send(),
        )
        .await;
        assert_eq!(
            (got.status, got.code.as_str()),
            (404, "NoSuchUpload"),
            "{f}: {got:?}"
        );
        let part = wormgate_tests::locks::outcome(
            agent
                .upload_part()
                .bucket(&b)
                .key("K")
                .upload_id(f)
                .part_number(2)
                .body(ByteStream::from_static(b"ransom"))
                .send(),
        )
        .await;
        assert_eq!(part.status, 404, "{f}: {part:?}");
    }
    // The same upload id under another key is no upload either.
    let got = wormgate_tests::locks::outcome(
        agent
            .complete_multipart_upload()
            .bucket(&b)
            .key("d/K")
            .upload_id(&id)
            .multipart_upload(parts.clone())
            .send(),
    )
    .await;
    assert_eq!(got.status, 404, "{got:?}");
    assert_eq!(
        stored(&stack, &b, &backend_name("K", Some(&vk))).await,
        before
    );
    // The genuine id completes, as a new version.
    let done = agent
        .complete_multipart_upload()
        .bucket(&b)
        .key("K")
        .upload_id(&id)
        .multipart_upload(parts)
        .send()
        .await
        .expect("complete");
    assert_eq!(done.version_id(), Some(mine));
    assert_eq!(done.key(), Some("K"));
    assert_eq!(
        stored(&stack, &b, &backend_name("K", Some(&vk))).await,
        before
    );
}

fn md5_b64(body: &str) -> String {
    wormgate_tests::content_md5(body)
}

#[tokio::test]
async fn what_is_decided_is_what_is_forwarded() {
    let stack = Stack::start().await;
    let agent = stack.gateway();
    let b = lock_bucket(&agent, "forward").await;
    let until = "2099-01-01T00:00:00.000Z";

    // Lock headers named in Connection would be dropped on the way: refused, nothing stored.
    let got = raw(
        &stack,
        "PUT",
        &format!("/{b}/hop"),
        &[
            (
                "connection",
                "keep-alive, x-amz-object-lock-mode, x-amz-object-lock-retain-until-date",
            ),
            ("x-amz-object-lock-mode", "COMPLIANCE"),
            ("x-amz-object-lock-retain-until-date", until),
            ("content-md5", &md5_b64("data")),
        ],
        "data",
    )
    .await;
    assert_eq!(
        (got.status, got.code()),
        (400, "InvalidRequest"),
        "{}",
        got.body
    );
    assert_eq!(stored(&stack, &b, "hop").await, None);

    // A decision header given twice could be read one way here and another there.
    let got = raw(
        &stack,
        "PUT",
        &format!("/{b}/twice"),
        &[
            ("x-amz-object-lock-mode", "GOVERNANCE"),
            ("x-amz-object-lock-mode", "COMPLIANCE"),
            ("x-amz-object-lock-retain-until-date", until),
            ("content-md5", &md5_b64("data")),
        ],
        "data",
    )
    .await;
    assert_eq!(
        (got.status, got.code()),
        (400, "InvalidArgument"),
        "{}",
        got.body
    );

    // A lock date with an offset is stored as the instant it names.
    let got = raw(
        &stack,
        "PUT",
        &format!("/{b}/offset"),
        &[
            ("x-amz-object-lock-mode", "GOVERNANCE"),
            (
                "x-amz-object-lock-retain-until-date",
                "2099-01-01T00:10:56-12:00",
            ),
            ("content-md5", &md5_b64("data")),
        ],
        "data",
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    let s = stored(&stack, &b, "offset").await.expect("stored");
    assert!(
        s.lock.contains(&(
            "wormgate-retain-until".to_owned(),
            "2099-01-01T12:10:56.000Z".to_owned()
        )),
        "{s:?}"
    );
    let retention = "<Retention><Mode>GOVERNANCE</Mode><RetainUntilDate>2099-06-01T00:00:00+14:00</RetainUntilDate></Retention>";
    let got = raw(
        &stack,
        "PUT",
        &format!("/{b}/offset?retention"),
        &[("content-md5", &md5_b64(retention))],
        retention,
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    let r = agent
        .get_object_retention()
        .bucket(&b)
        .key("offset")
        .send()
        .await
        .expect("retention");
    let date = r
        .retention()
        .and_then(|r| r.retain_until_date())
        .expect("date");
    assert_eq!(
        date.fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime)
            .expect("fmt"),
        "2099-05-31T10:00:00Z"
    );

    // A header outside the signature (a presigned URL's holder could add it) is refused.
    let url = format!("{}/{b}/offset?retention", stack.gateway_url());
    let mut req = http::Request::builder()
        .method("PUT")
        .uri(&url)
        .body(full(Bytes::from(retention)))
        .expect("request");
    wormgate_tests::sign_request(&mut req, ADMIN_KEY, ADMIN_SECRET);
    req.headers_mut().insert(
        "x-amz-bypass-governance-retention",
        http::HeaderValue::from_static("true"),
    );
    let got = wormgate_tests::send(req).await;
    assert_eq!(
        (got.status, got.code()),
        (403, "AccessDenied"),
        "{}",
        got.body
    );
    assert!(got.message().contains("not signed"), "{}", got.body);

    // Presigned URLs live at most a week.
    let presigned = agent
        .get_object()
        .bucket(&b)
        .key("offset")
        .presigned(
            aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(7 * 86_400))
                .expect("config"),
        )
        .await
        .expect("presign");
    let ok = wormgate_tests::send_presigned(&presigned, empty_raw_body()).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let url = format!("{}/{b}/offset", stack.gateway_url());
    let got = wormgate_tests::send(presign_for(&url, 7 * 86_400 + 1)).await;
    assert_eq!(got.status, 400, "{}", got.body);
    assert_eq!(
        got.code(),
        "AuthorizationQueryParametersError",
        "{}",
        got.body
    );

    // A parameter given twice: which version would the store delete?
    let got = raw(
        &stack,
        "DELETE",
        &format!("/{b}/offset?versionId=a&versionId=b"),
        &[],
        "",
    )
    .await;
    assert_eq!(
        (got.status, got.code()),
        (400, "InvalidArgument"),
        "{}",
        got.body
    );
    assert!(stored(&stack, &b, "offset").await.is_some());
}

/// A presigned GET valid for `secs`, signed with aws-sigv4 itself (the SDK refuses over a week).
fn presign_for(url: &str, secs: u64) -> http::Request<wormgate_tests::RawBody> {
    use aws_sigv4::http_request::{
        SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
    };
    let identity: aws_smithy_runtime_api::client::identity::Identity =
        aws_credential_types::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(secs));
    settings.uri_path_normalization_mode =
        aws_sigv4::http_request::UriPathNormalizationMode::Disabled;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(wormgate_tests::REGION)
        .name("s3")
        .time(std::time::SystemTime::now())
        .settings(settings)
        .build()
        .expect("params")
        .into();
    let mut req = http::Request::get(url)
        .body(empty_raw_body())
        .expect("request");
    let signable = SignableRequest::new(
        "GET",
        url,
        std::iter::empty(),
        SignableBody::UnsignedPayload,
    )
    .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    instructions.apply_to_request_http1x(&mut req);
    req
}

#[tokio::test]
async fn the_index_never_wins_against_a_stricter_truth() {
    let mut stack = Stack::start().await;
    let admin = stack.admin();
    let b = lock_bucket(&admin, "truth").await;
    let v = put_locked(&admin, &b, "K", ObjectLockMode::Compliance, in_secs(86_400)).await;
    let before = stored(&stack, &b, "K").await.expect("K");

    // The index is lost; an administrator deletes the bucket.
    let dir = stack.settings.locks.index_dir.clone();
    stack.stop_gateway_for_test().await;
    std::fs::remove_dir_all(&dir).expect("lose the index");
    stack.restart_gateway().await;
    let admin = stack.admin();
    let got = wormgate_tests::locks::outcome(admin.delete_bucket().bucket(&b).send()).await;
    assert_eq!(
        (got.status, got.code.as_str()),
        (409, "BucketNotEmpty"),
        "{got:?}"
    );
    assert_eq!(stored(&stack, &b, "K").await, Some(before.clone()));
    // The store itself never deletes a non-empty bucket either.
    let direct =
        wormgate_tests::locks::outcome(stack.direct().delete_bucket().bucket(&b).send()).await;
    assert_eq!(direct.status, 409, "{direct:?}");
    assert_eq!(stored(&stack, &b, "K").await, Some(before));

    // K's lock is read back from the store when first asked for, and still refuses.
    let del = wormgate_tests::locks::outcome(
        admin
            .delete_object()
            .bucket(&b)
            .key("K")
            .set_version_id(v.clone())
            .send(),
    )
    .await;
    assert_eq!(del.status, 403, "{del:?}");

    // A stricter index record than the backend's survives a rebuild; verify names the side.
    stack.stop_gateway_for_test().await;
    let stricter = chrono::Utc::now() + chrono::TimeDelta::days(400);
    {
        use policy::index::LockIndex as _;
        let index = wormgate_tests::open_stopped_index(&dir).await;
        let object = policy::lock::ObjectRef::new(&b, "K", v.as_deref());
        let mut record = index.get(&object).expect("read").expect("K is indexed");
        record.lock.retention = record.lock.retention.map(|r| policy::lock::Retention {
            until: stricter,
            ..r
        });
        index.put(&record).expect("write");
        index.flush().expect("flush");
    }
    {
        let server = wormgate::server::Server::new(&stack.settings)
            .await
            .expect("server");
        let report = server.verify_index().await.expect("verify");
        assert!(report.disagrees(), "{report:?}");
        let f = &report.findings[0];
        assert_eq!(f.kind.stricter_side(), Some("index"), "{report:?}");
        server.rebuild_index().await.expect("rebuild");
    }
    use policy::index::LockIndex as _;
    let index = wormgate_tests::open_stopped_index(&dir).await;
    let kept = index
        .get(&policy::lock::ObjectRef::new(&b, "K", v.as_deref()))
        .expect("read")
        .and_then(|r| r.lock.retention)
        .expect("retention");
    assert!(
        (kept.until - stricter).num_seconds().abs() < 1,
        "rebuild weakened {stricter} to {}",
        kept.until
    );
}

#[tokio::test]
async fn every_batch_decision_is_recorded() {
    let stack = Stack::start().await;
    let agent = stack.gateway();
    let b = lock_bucket(&agent, "batch").await;
    let locked = put_locked(
        &agent,
        &b,
        "locked",
        ObjectLockMode::Compliance,
        in_secs(86_400),
    )
    .await
    .expect("a version");
    let free = agent
        .put_object()
        .bucket(&b)
        .key("free")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("put")
        .version_id
        .expect("a version");
    // By version id: without one, each key only gets a delete marker.
    let delete = format!(
        "<Delete><Object><Key>locked</Key><VersionId>{locked}</VersionId></Object><Object><Key>free</Key><VersionId>{free}</VersionId></Object></Delete>"
    );
    let delete = delete.as_str();
    let got = raw(
        &stack,
        "POST",
        &format!("/{b}?delete"),
        &[("content-md5", &md5_b64(delete))],
        delete,
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    let events = stack.admin_get("/audit/events", Some(ADMIN_TOKEN)).await;
    let lines: Vec<serde_json::Value> = events
        .body
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let find = |key: &str, decision: &str| {
        lines
            .iter()
            .any(|e| e["op"] == "DeleteObjects" && e["key"] == key && e["decision"] == decision)
    };
    assert!(find("locked", "denied"), "{}", events.body);
    assert!(find("free", "allowed"), "{}", events.body);
    let metrics = stack.admin_get("/metrics", Some(ADMIN_TOKEN)).await;
    assert!(
        metrics
            .body
            .contains("wormgate_denials_total{reason=\"retention-compliance\"} 1"),
        "{}",
        metrics.body
    );

    // The bypass header on a bucket without object lock: one 400 for the request.
    let plain = stack.new_bucket("plain").await;
    let got = raw(
        &stack,
        "POST",
        &format!("/{plain}?delete"),
        &[
            ("content-md5", &md5_b64(delete)),
            ("x-amz-bypass-governance-retention", "true"),
        ],
        delete,
    )
    .await;
    assert_eq!(
        (got.status, got.code()),
        (400, "InvalidArgument"),
        "{}",
        got.body
    );
}

#[tokio::test]
async fn a_refusal_is_recorded_once() {
    let stack = Stack::start().await;
    let agent = stack.gateway();
    let b = lock_bucket(&agent, "once").await;
    let v = put_locked(&agent, &b, "K", ObjectLockMode::Governance, in_secs(60))
        .await
        .expect("a version");
    // The gateway's clock runs a day ahead of the store's: an expiry it sees must be refused.
    stack.clock.advance(chrono::TimeDelta::days(1));
    let got = raw(&stack, "DELETE", &format!("/{b}/K?versionId={v}"), &[], "").await;
    assert_eq!(got.status, 503, "{}", got.body);
    let events = stack.admin_get("/audit/events", Some(ADMIN_TOKEN)).await;
    let clock = events
        .body
        .lines()
        .filter(|l| l.contains("\"reason\":\"clock-untrusted\""))
        .count();
    assert_eq!(clock, 1, "{}", events.body);
    assert!(stored(&stack, &b, "K").await.is_some());
}

#[tokio::test]
async fn conformance_points() {
    let stack = Stack::start().await;
    let admin = stack.admin();
    let b = lock_bucket(&admin, "conform").await;
    admin
        .put_object()
        .bucket(&b)
        .key("h")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("put");
    let none =
        wormgate_tests::locks::outcome(admin.get_object_legal_hold().bucket(&b).key("h").send())
            .await;
    assert_eq!(none.status, 404, "never held: {none:?}");
    for on in [true, false] {
        admin
            .put_object_legal_hold()
            .bucket(&b)
            .key("h")
            .legal_hold(hold(on))
            .send()
            .await
            .expect("legal hold");
    }
    let got = admin
        .get_object_legal_hold()
        .bucket(&b)
        .key("h")
        .send()
        .await
        .expect("OFF after ON");
    assert_eq!(
        got.legal_hold()
            .and_then(|h| h.status())
            .map(|s| s.as_str()),
        Some("OFF")
    );
    let head = admin
        .head_object()
        .bucket(&b)
        .key("h")
        .send()
        .await
        .expect("head");
    assert_eq!(
        head.object_lock_legal_hold_status().map(|s| s.as_str()),
        Some("OFF")
    );

    let got = raw(
        &stack,
        "GET",
        &format!("/{b}?list-type=2&prefix=&continuation-token="),
        &[],
        "",
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert!(
        got.body.contains("<Prefix></Prefix>") || got.body.contains("<Prefix/>"),
        "{}",
        got.body
    );
}

#[tokio::test]
async fn an_emptied_bucket_is_deleted_and_a_full_one_never() {
    let stack = Stack::start().await;
    let admin = stack.admin();
    let b = stack.new_bucket("emptied").await;
    for key in ["a/b/c", "a/d", "e"] {
        admin
            .put_object()
            .bucket(&b)
            .key(key)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .expect("put");
    }
    let full = wormgate_tests::locks::outcome(admin.delete_bucket().bucket(&b).send()).await;
    assert_eq!((full.status, full.code.as_str()), (409, "BucketNotEmpty"));
    for key in ["a/b/c", "a/d", "e"] {
        admin
            .delete_object()
            .bucket(&b)
            .key(key)
            .send()
            .await
            .expect("delete");
    }
    // The directories the store kept for `a/b/c` hold no object: the bucket goes.
    admin
        .delete_bucket()
        .bucket(&b)
        .send()
        .await
        .expect("an emptied bucket is deleted");
}

/// A lifecycle rule that expires every object after a day.
fn expire_all() -> aws_sdk_s3::types::BucketLifecycleConfiguration {
    aws_sdk_s3::types::BucketLifecycleConfiguration::builder()
        .rules(
            aws_sdk_s3::types::LifecycleRule::builder()
                .id("expire-all")
                .status(aws_sdk_s3::types::ExpirationStatus::Enabled)
                .filter(
                    aws_sdk_s3::types::LifecycleRuleFilter::builder()
                        .prefix("")
                        .build(),
                )
                .expiration(
                    aws_sdk_s3::types::LifecycleExpiration::builder()
                        .days(1)
                        .build(),
                )
                .build()
                .expect("rule"),
        )
        .build()
        .expect("lifecycle")
}

/// Versions the gateway keeps and lifecycle rules never meet on a store that runs the rules
/// (LocalStack here, in the `gateway` profile): the rules would expire the versions by their
/// backend names, and the record that the bucket is versioned.
/// - A bucket with rules is not made versioned (403), and the store keeps no record of it.
/// - A bucket made versioned gets no rules (501), through the gateway that made it so and
///   through another with an empty index; the store holds none.
/// - Rules and a lock configuration put at the same moment through two gateways, on many
///   buckets: whichever order the requests take on the store, no bucket ends with both.
#[tokio::test]
async fn lifecycle_rules_and_kept_versions_never_meet() {
    use wormgate_tests::locks::outcome;
    let localstack = wormgate_tests::LocalStack::start().await;
    let one = Stack::start_remote(localstack.backend(), policy::lock::Profile::Gateway).await;
    let two = one.beside().await;
    let (admin_one, admin_two) = (one.admin(), two.admin());
    let store = wormgate_tests::s3_client(
        &format!("http://127.0.0.1:{}", localstack.port),
        "test",
        "test",
    );
    let enable = |client: aws_sdk_s3::Client, b: String| async move {
        outcome(
            client
                .put_bucket_versioning()
                .bucket(b)
                .versioning_configuration(
                    aws_sdk_s3::types::VersioningConfiguration::builder()
                        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                        .build(),
                )
                .send(),
        )
        .await
    };
    let put_rules = |client: aws_sdk_s3::Client, b: String| async move {
        outcome(
            client
                .put_bucket_lifecycle_configuration()
                .bucket(b)
                .lifecycle_configuration(expire_all())
                .send(),
        )
        .await
    };

    let ruled = one.new_bucket("liferst").await;
    assert_eq!(
        put_rules(admin_one.clone(), ruled.clone()).await.status,
        200
    );
    let refused = enable(admin_one.clone(), ruled.clone()).await;
    assert_eq!(
        (refused.status, refused.code.as_str()),
        (403, "AccessDenied")
    );
    assert!(!settings_on_store(&store, &ruled, "versioning!").await);

    let versioned = one.new_bucket("verlife").await;
    assert_eq!(
        enable(admin_one.clone(), versioned.clone()).await.status,
        200
    );
    for client in [admin_one.clone(), admin_two.clone()] {
        let refused = put_rules(client, versioned.clone()).await;
        assert_eq!(
            (refused.status, refused.code.as_str()),
            (501, "NotImplemented")
        );
    }
    assert!(
        !rules_on_store(&store, &versioned).await,
        "the store holds no rule"
    );

    let mut buckets = Vec::new();
    for i in 0..24 {
        buckets.push(one.new_bucket(&format!("cross{i}")).await);
    }
    let lock_config = aws_sdk_s3::types::ObjectLockConfiguration::builder()
        .object_lock_enabled(aws_sdk_s3::types::ObjectLockEnabled::Enabled)
        .build();
    let races = buckets.iter().enumerate().map(|(i, b)| {
        // Half the rules go through one gateway, half through the other.
        let (rules_via, lock_via) = if i % 2 == 0 {
            (admin_one.clone(), admin_two.clone())
        } else {
            (admin_two.clone(), admin_one.clone())
        };
        let lock = lock_via
            .put_object_lock_configuration()
            .bucket(b)
            .object_lock_configuration(lock_config.clone())
            .send();
        let rules = put_rules(rules_via, b.clone());
        async move {
            let (rules, lock) = tokio::join!(rules, outcome(lock));
            (rules.status, lock.status)
        }
    });
    let answers = futures::future::join_all(races).await;
    let mut both_stayed = Vec::new();
    for (b, (rules_answer, lock_answer)) in buckets.iter().zip(&answers) {
        let rules = rules_on_store(&store, b).await;
        let lock = settings_on_store(&store, b, "lock!").await;
        println!(
            "{b}: rules answered {rules_answer}, lock answered {lock_answer}; on the store: rules {rules}, lock record {lock}"
        );
        if rules && lock {
            both_stayed.push(b.clone());
        }
    }
    assert!(
        both_stayed.is_empty(),
        "rules on lock buckets: {both_stayed:?}"
    );
}

/// Whether the store holds lifecycle rules for `bucket`.
async fn rules_on_store(store: &aws_sdk_s3::Client, bucket: &str) -> bool {
    let got = store
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await;
    got.is_ok_and(|r| !r.rules().is_empty())
}

/// Whether the store holds a record of the bucket's settings (`lock!`, `versioning!`).
async fn settings_on_store(store: &aws_sdk_s3::Client, bucket: &str, record: &str) -> bool {
    let listed = store
        .list_objects_v2()
        .bucket(bucket)
        .prefix(format!(".wormgate/bucket/{record}"))
        .send()
        .await
        .expect("the store lists the bucket");
    listed.key_count().unwrap_or(0) > 0
}

/// A lock bucket is never deleted through the gateway while a version or delete marker is in
/// it, nor once emptied (its lock records stay). No lifecycle rule is ever set on a lock
/// bucket whose store does not enforce locks: not empty, not after the index is lost.
#[tokio::test]
async fn a_lock_bucket_is_never_deleted_nor_given_a_lifecycle() {
    use wormgate_tests::locks::outcome;
    let mut stack = Stack::start().await;
    let admin = stack.admin();
    let b = lock_bucket(&admin, "emptied-lock").await;
    let rule = expire_all();
    let lifecycle = |admin: aws_sdk_s3::Client| {
        let (b, rule) = (b.clone(), rule.clone());
        async move {
            outcome(
                admin
                    .put_bucket_lifecycle_configuration()
                    .bucket(&b)
                    .lifecycle_configuration(rule)
                    .send(),
            )
            .await
        }
    };
    let empty = lifecycle(admin.clone()).await;
    assert_eq!(
        (empty.status, empty.code.as_str()),
        (403, "AccessDenied"),
        "{empty:?}"
    );
    let v = admin
        .put_object()
        .bucket(&b)
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("put")
        .version_id
        .expect("a version");
    let marker = admin
        .delete_object()
        .bucket(&b)
        .key("k")
        .send()
        .await
        .expect("a delete marker")
        .version_id
        .expect("its id");
    // The index is lost: the store's record says lock bucket; still no lifecycle.
    let dir = stack.settings.locks.index_dir.clone();
    stack.stop_gateway_for_test().await;
    std::fs::remove_dir_all(&dir).expect("lose the index");
    stack.restart_gateway().await;
    let admin = stack.admin();
    let lost = lifecycle(admin.clone()).await;
    assert_eq!(
        (lost.status, lost.code.as_str()),
        (403, "AccessDenied"),
        "{lost:?}"
    );
    // Versions and markers are content.
    let full = outcome(admin.delete_bucket().bucket(&b).send()).await;
    assert_eq!((full.status, full.code.as_str()), (409, "BucketNotEmpty"));
    admin
        .delete_object()
        .bucket(&b)
        .key("k")
        .version_id(&v)
        .send()
        .await
        .expect("the version");
    let only_marker = outcome(admin.delete_bucket().bucket(&b).send()).await;
    assert_eq!(only_marker.status, 409, "{only_marker:?}");
    admin
        .delete_object()
        .bucket(&b)
        .key("k")
        .version_id(&marker)
        .send()
        .await
        .expect("the marker");
    // Emptied, it still holds the records of its lock configuration, which no gateway ever
    // removes: a lock bucket is never taken for a plain one (and given a lifecycle rule).
    let emptied = outcome(admin.delete_bucket().bucket(&b).send()).await;
    assert_eq!(
        (emptied.status, emptied.code.as_str()),
        (409, "BucketNotEmpty"),
        "{emptied:?}"
    );
    assert!(emptied.message.contains(".wormgate/bucket/"), "{emptied:?}");
    let kept = outcome(stack.direct().head_bucket().bucket(&b).send()).await;
    assert_eq!(kept.status, 200, "{kept:?}");
}

/// Lifecycle rules set while a bucket was plain would expire the locked versions written once
/// it is a lock bucket: on a store that runs lifecycle rules (LocalStack here, in the `gateway`
/// profile), such a bucket is not made a lock bucket.
#[tokio::test]
async fn a_bucket_with_lifecycle_rules_does_not_become_a_lock_bucket() {
    use wormgate_tests::locks::outcome;
    let localstack = wormgate_tests::LocalStack::start().await;
    let stack = Stack::start_remote(localstack.backend(), policy::lock::Profile::Gateway).await;
    let admin = stack.admin();
    let b = stack.new_bucket("ruled").await;
    let rule = expire_all();
    admin
        .put_bucket_lifecycle_configuration()
        .bucket(&b)
        .lifecycle_configuration(rule)
        .send()
        .await
        .expect("a rule on a plain bucket");
    let lock = outcome(
        admin
            .put_object_lock_configuration()
            .bucket(&b)
            .object_lock_configuration(
                aws_sdk_s3::types::ObjectLockConfiguration::builder()
                    .object_lock_enabled(aws_sdk_s3::types::ObjectLockEnabled::Enabled)
                    .build(),
            )
            .send(),
    )
    .await;
    assert_eq!(
        (lock.status, lock.code.as_str()),
        (403, "AccessDenied"),
        "{lock:?}"
    );
    let again = outcome(
        admin
            .create_bucket()
            .bucket(&b)
            .object_lock_enabled_for_bucket(true)
            .send(),
    )
    .await;
    assert!(!again.is_ok(), "{again:?}");
    let versioning = admin
        .get_bucket_versioning()
        .bucket(&b)
        .send()
        .await
        .expect("versioning");
    assert_ne!(
        versioning
            .status()
            .map(|s| s.as_str().to_owned())
            .as_deref(),
        Some("Enabled"),
        "the bucket stayed plain"
    );
}

/// The index may only ever be stricter than the store: an index that says a version's lock
/// has ended (stale, restored from a backup, or another gateway's extension never seen)
/// does not let its delete through while the version's own record on the store still
/// protects it.
#[tokio::test]
async fn a_weaker_index_does_not_allow_a_delete() {
    use policy::index::LockIndex as _;
    let mut stack = Stack::start().await;
    let agent = stack.gateway();
    let b = lock_bucket(&agent, "weaker").await;
    let v = put_locked(&agent, &b, "K", ObjectLockMode::Compliance, in_secs(86_400))
        .await
        .expect("a version");
    let dir = stack.settings.locks.index_dir.clone();
    stack.stop_gateway_for_test().await;
    {
        let index = wormgate_tests::open_stopped_index(&dir).await;
        let object = policy::lock::ObjectRef::new(&b, "K", Some(&v));
        let mut record = index.get(&object).expect("read").expect("K is indexed");
        record.lock.retention = record.lock.retention.map(|r| policy::lock::Retention {
            until: chrono::Utc::now() - chrono::TimeDelta::hours(1),
            ..r
        });
        index.put(&record).expect("write");
        index.flush().expect("flush");
    }
    stack.restart_gateway().await;
    let got = wormgate_tests::locks::outcome(
        stack
            .gateway()
            .delete_object()
            .bucket(&b)
            .key("K")
            .version_id(&v)
            .send(),
    )
    .await;
    assert_eq!(
        (got.status, got.code.as_str()),
        (403, "AccessDenied"),
        "{got:?}"
    );
    assert!(
        stored(&stack, &b, &backend_name("K", Some(&v)))
            .await
            .is_some()
    );
}

#[tokio::test]
async fn slow_clients_are_cut_and_others_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stack = Stack::start().await;
    stack.settings.header_read_timeout_secs = 2;
    stack.settings.max_connections = 16;
    stack.restart_gateway().await;
    let addr = stack.gateway_addr;
    // Twice the cap of connections that never finish their headers.
    let mut slow = Vec::new();
    for _ in 0..32 {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("write");
        slow.push(s);
    }
    // A normal client is served (once the slow ones are cut, if the cap is full).
    let b = tokio::time::timeout(Duration::from_secs(30), stack.new_bucket("served"))
        .await
        .expect("a normal client was served");
    assert!(!b.is_empty());
    // Every slow connection is closed by the gateway.
    for mut s in slow {
        let mut buf = [0u8; 512];
        let closed = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "a connection without headers was held");
    }
}

/// Pieces of generated keys: ordinary names, dot and empty segments, their encodings,
/// the store's own file names, unicode and spaces.
const PIECES: &[&str] = &[
    "K",
    "d",
    "x",
    "y",
    ".",
    "..",
    "",
    "%2E",
    "%2e%2E",
    "%2F",
    ".bucket-x",
    "ключ",
    "a b",
    "...",
    ".k",
    "\\",
    "%00",
];

fn generated_key() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just(""), Just("/"), Just("./"), Just("../")],
        proptest::collection::vec(0..PIECES.len(), 1..5),
        prop_oneof![Just("/"), Just("//"), Just("/./")],
    )
        .prop_map(|(lead, pieces, sep)| {
            let body: Vec<&str> = pieces.iter().map(|i| PIECES[*i]).collect();
            format!("{lead}{}", body.join(sep))
        })
}

/// Percent-encodes what a URL path cannot carry raw, keeping `%XX` the generator wrote.
fn path_encode(key: &str) -> String {
    let mut out = String::new();
    for c in key.chars() {
        if c.is_ascii_alphanumeric() || "-._~/%".contains(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

#[test]
fn generated_keys_never_reach_a_locked_object_or_another_bucket() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (stack, b, other, [vk, vdk]) = rt.block_on(async {
        let stack = Stack::start().await;
        let (b, other, versions) = protected(&stack).await;
        (stack, b, other, versions)
    });
    // The locked versions themselves, by the names the store keeps them under.
    let names = [
        (&b, backend_name("K", Some(&vk))),
        (&b, backend_name("d/K", Some(&vdk))),
        (&other, "secret".to_owned()),
    ];
    let snapshot = |stack: &Stack| {
        rt.block_on(async {
            let mut all = Vec::new();
            for (bucket, name) in &names {
                all.push(stored(stack, bucket, name).await);
            }
            let listed = stack
                .direct()
                .list_objects_v2()
                .bucket(&other)
                .send()
                .await
                .expect("list other")
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned))
                .collect::<Vec<_>>();
            (all, listed)
        })
    };
    let before = snapshot(&stack);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(256));
    let cases = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&(generated_key(), 0u8..5), |(key, op)| {
            cases.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = format!("/{b}/{}", path_encode(&key));
            let got = rt.block_on(async {
                match op {
                    0 => raw(&stack, "PUT", &path, &[], "ransom").await,
                    // With K's version id: a delete that reached K would destroy it.
                    1 => raw(&stack, "DELETE", &format!("{path}?versionId={vk}"), &[], "").await,
                    2 => {
                        let source = format!("{other}/{}", path_encode(&key));
                        raw(
                            &stack,
                            "PUT",
                            &format!("/{b}/copy-dest"),
                            &[("x-amz-copy-source", source.as_str())],
                            "",
                        )
                        .await
                    }
                    3 => {
                        raw(
                            &stack,
                            "PUT",
                            &path,
                            &[("x-amz-copy-source", &format!("{b}/K"))],
                            "",
                        )
                        .await
                    }
                    _ => {
                        let escaped = key.replace('&', "&amp;").replace('<', "&lt;");
                        let body = format!(
                            "<Delete><Object><Key>{escaped}</Key><VersionId>{vk}</VersionId></Object></Delete>"
                        );
                        raw(
                            &stack,
                            "POST",
                            &format!("/{b}?delete"),
                            &[("content-md5", &md5_b64(&body))],
                            &body,
                        )
                        .await
                    }
                }
            });
            // Nothing but an error may answer a key that names another object.
            let decoded = percent_encoding::percent_decode_str(&key)
                .decode_utf8_lossy()
                .into_owned();
            let risky = decoded.starts_with('/')
                || decoded
                    .trim_end_matches('/')
                    .split('/')
                    .any(|s| matches!(s, "" | "." | ".."));
            // (An empty key is the bucket itself: a bucket request, decided as such.)
            if risky && !decoded.is_empty() && op != 4 {
                prop_assert!(
                    got.status == 400,
                    "{op} {key:?} answered {}: {}",
                    got.status,
                    got.body
                );
            }
            let after = snapshot(&stack);
            prop_assert_eq!(
                &after,
                &before,
                "op {} on key {:?} changed a protected object",
                op,
                key
            );
            Ok(())
        })
        .expect("no generated key reached a locked object or another bucket");
    eprintln!(
        "generated keys: {} cases",
        cases.load(std::sync::atomic::Ordering::Relaxed)
    );
}
