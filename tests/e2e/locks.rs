//! Object lock through the gateway, path by path, with the replies AWS gives: against s3s-fs
//! (the `gateway` profile: the gateway alone enforces) and against LocalStack (the `native`
//! profile: the backend has S3 Object Lock and both enforce).

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketVersioningStatus, CompletedMultipartUpload, CompletedPart,
    Delete, ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
    ObjectIdentifier, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockMode,
    ObjectLockRetention, ObjectLockRetentionMode, VersioningConfiguration,
};
use policy::lock::Profile;
use wormgate_tests::locks::{
    Expect, Matrix, default_retention, hold, in_secs, lock_bucket, outcome, put_locked,
};
use wormgate_tests::{ACCESS_KEY, LocalStack, SECRET_KEY, Stack, full, s3_client, signed_request};

fn retention(mode: ObjectLockRetentionMode, secs: i64) -> ObjectLockRetention {
    ObjectLockRetention::builder()
        .mode(mode)
        .retain_until_date(in_secs(secs))
        .build()
}

fn ident(key: &str, version: Option<&str>) -> ObjectIdentifier {
    ObjectIdentifier::builder()
        .key(key)
        .set_version_id(version.map(str::to_owned))
        .build()
        .expect("identifier")
}

/// What every part of the matrix works on: the stack, its clients, a lock bucket and a plain
/// one, the COMPLIANCE version the first part writes, and the matrix of rows.
struct Run<'a> {
    stack: &'a Stack,
    agent: Client,
    admin: Client,
    /// Versioned lock buckets: the backend's own (native) or the gateway's (gateway profile).
    versioned: bool,
    /// The backend enforces locks itself (its lifecycle rules respect them).
    native: bool,
    bucket: String,
    plain: String,
    v_comp: Option<String>,
    m: Matrix,
}

/// PutObjectRetention on `bucket`, ready to send.
fn put_ret(
    bucket: &str,
    client: &Client,
    key: &str,
    version: Option<String>,
    r: ObjectLockRetention,
    bypass: bool,
) -> aws_sdk_s3::operation::put_object_retention::builders::PutObjectRetentionFluentBuilder {
    client
        .put_object_retention()
        .bucket(bucket)
        .key(key)
        .set_version_id(version)
        .retention(r)
        .set_bypass_governance_retention(bypass.then_some(true))
}

/// Every path of the matrix, against one stack, a part per concern. Returns the rendered matrix.
async fn run_matrix(stack: &Stack, profile: Profile) -> String {
    let agent = stack.gateway();
    let bucket = lock_bucket(&agent, "lock").await;
    let plain = stack.new_bucket("plain").await;
    let mut run = Run {
        stack,
        admin: stack.admin(),
        agent,
        versioned: profile != Profile::BucketRetention,
        native: profile == Profile::Native,
        bucket,
        plain,
        v_comp: None,
        m: Matrix::new(profile.as_str()),
    };

    Box::pin(compliance_deletes_and_overwrites(&mut run)).await;
    Box::pin(compliance_retention(&mut run)).await;
    Box::pin(governance(&mut run)).await;
    Box::pin(legal_hold(&mut run)).await;
    Box::pin(batch_deletes(&mut run)).await;
    Box::pin(copies(&mut run)).await;
    Box::pin(bad_lock_input(&mut run)).await;
    Box::pin(bucket_settings(&mut run)).await;
    Box::pin(defaults(&mut run)).await;
    Box::pin(presigned(&mut run)).await;
    Box::pin(expiry(&mut run)).await;
    Box::pin(reserved_metadata(&mut run)).await;
    run.m.render()
}

/// A COMPLIANCE version, an hour long: deleting, overwriting or copying over it is refused.
async fn compliance_deletes_and_overwrites(run: &mut Run<'_>) {
    let agent = &run.agent;
    let admin = &run.admin;
    let versioned = run.versioned;
    let bucket = run.bucket.clone();
    let plain = run.plain.clone();
    let m = &mut run.m;

    let cfg = outcome(agent.get_object_lock_configuration().bucket(&bucket).send()).await;
    m.check(
        "GetObjectLockConfiguration on a lock bucket",
        &cfg,
        Expect::Ok,
    );
    let none = outcome(agent.get_object_lock_configuration().bucket(&plain).send()).await;
    m.check(
        "GetObjectLockConfiguration, no lock",
        &none,
        Expect::Refused(404, "ObjectLockConfigurationNotFoundError"),
    );

    // A COMPLIANCE version, an hour long.
    let v_comp = put_locked(
        agent,
        &bucket,
        "comp",
        ObjectLockMode::Compliance,
        in_secs(3600),
    )
    .await;
    run.v_comp = v_comp.clone();
    let head = agent
        .head_object()
        .bucket(&bucket)
        .key("comp")
        .send()
        .await
        .expect("head");
    assert_eq!(
        head.object_lock_mode().map(|m| m.as_str()),
        Some("COMPLIANCE")
    );
    assert!(head.object_lock_retain_until_date().is_some());
    m.rows.push((
        "PutObject with COMPLIANCE headers; HEAD shows them".into(),
        "200 ok".into(),
    ));

    let del = outcome(
        agent
            .delete_object()
            .bucket(&bucket)
            .key("comp")
            .set_version_id(v_comp.clone())
            .send(),
    )
    .await;
    m.check("DeleteObject of a COMPLIANCE version", &del, Expect::Locked);
    let del = outcome(
        admin
            .delete_object()
            .bucket(&bucket)
            .key("comp")
            .set_version_id(v_comp.clone())
            .bypass_governance_retention(true)
            .send(),
    )
    .await;
    m.check(
        "DeleteObject of COMPLIANCE, admin with bypass",
        &del,
        Expect::Locked,
    );

    let plain_delete = outcome(agent.delete_object().bucket(&bucket).key("comp").send()).await;
    if versioned {
        m.check(
            "DeleteObject without versionId (delete marker)",
            &plain_delete,
            Expect::Ok,
        );
    } else {
        m.check(
            "DeleteObject without versionId (unversioned: destroys)",
            &plain_delete,
            Expect::Locked,
        );
    }

    let overwrite = outcome(
        agent
            .put_object()
            .bucket(&bucket)
            .key("comp")
            .body(ByteStream::from_static(b"ransom"))
            .send(),
    )
    .await;
    let copy_over = outcome(
        agent
            .copy_object()
            .bucket(&bucket)
            .key("comp")
            .copy_source(format!("{plain}/src"))
            .send(),
    )
    .await;
    if versioned {
        m.check(
            "PutObject over a locked key (new version)",
            &overwrite,
            Expect::Ok,
        );
    } else {
        m.check("PutObject over a locked key", &overwrite, Expect::Locked);
        // The copy's source does not exist: the refusal must come before the backend.
        m.check("CopyObject over a locked key", &copy_over, Expect::Locked);
        let up = agent
            .create_multipart_upload()
            .bucket(&bucket)
            .key("comp")
            .send()
            .await
            .expect("create upload");
        let upload_id = up.upload_id().expect("upload id").to_owned();
        let part = agent
            .upload_part()
            .bucket(&bucket)
            .key("comp")
            .upload_id(&upload_id)
            .part_number(1)
            .body(ByteStream::from_static(b"ransom part"))
            .send()
            .await
            .expect("part");
        let done = outcome(
            agent
                .complete_multipart_upload()
                .bucket(&bucket)
                .key("comp")
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .parts(
                            CompletedPart::builder()
                                .part_number(1)
                                .set_e_tag(part.e_tag().map(str::to_owned))
                                .build(),
                        )
                        .build(),
                )
                .send(),
        )
        .await;
        m.check(
            "CompleteMultipartUpload over a locked key",
            &done,
            Expect::Locked,
        );
    }
}

/// Retention changes on the COMPLIANCE version.
async fn compliance_retention(run: &mut Run<'_>) {
    let agent = &run.agent;
    let admin = &run.admin;
    let bucket = run.bucket.clone();
    let v_comp = run.v_comp.clone();
    let m = &mut run.m;
    let shorter = outcome(
        put_ret(
            &bucket,
            admin,
            "comp",
            v_comp.clone(),
            retention(ObjectLockRetentionMode::Compliance, 60),
            true,
        )
        .send(),
    )
    .await;
    m.check(
        "PutObjectRetention shortening COMPLIANCE (admin, bypass)",
        &shorter,
        Expect::Locked,
    );
    let downgrade = outcome(
        put_ret(
            &bucket,
            admin,
            "comp",
            v_comp.clone(),
            retention(ObjectLockRetentionMode::Governance, 7200),
            true,
        )
        .send(),
    )
    .await;
    m.check(
        "PutObjectRetention COMPLIANCE to GOVERNANCE",
        &downgrade,
        Expect::Locked,
    );
    let cleared = outcome(
        admin
            .put_object_retention()
            .bucket(&bucket)
            .key("comp")
            .set_version_id(v_comp.clone())
            .retention(ObjectLockRetention::builder().build())
            .bypass_governance_retention(true)
            .send(),
    )
    .await;
    assert!(!cleared.is_ok(), "clearing COMPLIANCE: {cleared:?}");
    m.check(
        "PutObjectRetention clearing COMPLIANCE",
        &cleared,
        if cleared.status == 403 {
            Expect::Locked
        } else {
            Expect::Refused(cleared.status, "MalformedXML")
        },
    );
    let extend = outcome(
        put_ret(
            &bucket,
            agent,
            "comp",
            v_comp.clone(),
            retention(ObjectLockRetentionMode::Compliance, 7200),
            false,
        )
        .send(),
    )
    .await;
    m.check(
        "PutObjectRetention extending (backup agent)",
        &extend,
        Expect::Ok,
    );
    let got = agent
        .get_object_retention()
        .bucket(&bucket)
        .key("comp")
        .set_version_id(v_comp.clone())
        .send()
        .await
        .expect("get retention");
    let until = got
        .retention()
        .and_then(|r| r.retain_until_date())
        .expect("date")
        .secs();
    assert!(until >= in_secs(7000).secs(), "extension not kept: {until}");
}

/// GOVERNANCE: bypass needs the permission and the header.
async fn governance(run: &mut Run<'_>) {
    let agent = &run.agent;
    let admin = &run.admin;
    let versioned = run.versioned;
    let bucket = run.bucket.clone();
    let m = &mut run.m;
    let v_gov = put_locked(
        agent,
        &bucket,
        "gov",
        ObjectLockMode::Governance,
        in_secs(3600),
    )
    .await;
    let no_header = outcome(
        admin
            .delete_object()
            .bucket(&bucket)
            .key("gov")
            .set_version_id(v_gov.clone())
            .send(),
    )
    .await;
    if versioned {
        // Without a version id the delete only adds a marker; name the version.
        assert!(v_gov.is_some());
    }
    m.check(
        "DeleteObject GOVERNANCE, admin without bypass header",
        &no_header,
        Expect::Locked,
    );
    let agent_bypass = outcome(
        agent
            .delete_object()
            .bucket(&bucket)
            .key("gov")
            .set_version_id(v_gov.clone())
            .bypass_governance_retention(true)
            .send(),
    )
    .await;
    m.check(
        "DeleteObject GOVERNANCE, backup agent with bypass header",
        &agent_bypass,
        Expect::Refused(403, "AccessDenied"),
    );
    let shorten_gov = outcome(
        put_ret(
            &bucket,
            agent,
            "gov",
            v_gov.clone(),
            retention(ObjectLockRetentionMode::Governance, 60),
            false,
        )
        .send(),
    )
    .await;
    m.check(
        "PutObjectRetention shortening GOVERNANCE without bypass",
        &shorten_gov,
        Expect::Locked,
    );
    let shorten_gov = outcome(
        put_ret(
            &bucket,
            admin,
            "gov",
            v_gov.clone(),
            retention(ObjectLockRetentionMode::Governance, 1800),
            true,
        )
        .send(),
    )
    .await;
    m.check(
        "PutObjectRetention shortening GOVERNANCE, admin with bypass",
        &shorten_gov,
        Expect::Ok,
    );
    let admin_bypass = outcome(
        admin
            .delete_object()
            .bucket(&bucket)
            .key("gov")
            .set_version_id(v_gov.clone())
            .bypass_governance_retention(true)
            .send(),
    )
    .await;
    m.check(
        "DeleteObject GOVERNANCE, admin with bypass header",
        &admin_bypass,
        Expect::Ok,
    );
}

/// Legal hold: only with the permission; the bypass does not lift it.
async fn legal_hold(run: &mut Run<'_>) {
    let agent = &run.agent;
    let admin = &run.admin;
    let bucket = run.bucket.clone();
    let m = &mut run.m;
    agent
        .put_object()
        .bucket(&bucket)
        .key("held")
        .body(ByteStream::from_static(b"evidence"))
        .send()
        .await
        .expect("put held");
    let v_held = agent
        .head_object()
        .bucket(&bucket)
        .key("held")
        .send()
        .await
        .expect("head")
        .version_id;
    let agent_hold = outcome(
        agent
            .put_object_legal_hold()
            .bucket(&bucket)
            .key("held")
            .set_version_id(v_held.clone())
            .legal_hold(hold(true))
            .send(),
    )
    .await;
    m.check(
        "PutObjectLegalHold by the backup agent",
        &agent_hold,
        Expect::Refused(403, "AccessDenied"),
    );
    let admin_hold = outcome(
        admin
            .put_object_legal_hold()
            .bucket(&bucket)
            .key("held")
            .set_version_id(v_held.clone())
            .legal_hold(hold(true))
            .send(),
    )
    .await;
    m.check(
        "PutObjectLegalHold ON by the administrator",
        &admin_hold,
        Expect::Ok,
    );
    let held_del = outcome(
        admin
            .delete_object()
            .bucket(&bucket)
            .key("held")
            .set_version_id(v_held.clone())
            .bypass_governance_retention(true)
            .send(),
    )
    .await;
    m.check(
        "DeleteObject of a held version, admin with bypass",
        &held_del,
        Expect::Locked,
    );
    let status = agent
        .get_object_legal_hold()
        .bucket(&bucket)
        .key("held")
        .set_version_id(v_held.clone())
        .send()
        .await
        .expect("get legal hold");
    assert_eq!(
        status
            .legal_hold()
            .and_then(|h| h.status())
            .map(|s| s.as_str()),
        Some("ON")
    );
    let lift = outcome(
        admin
            .put_object_legal_hold()
            .bucket(&bucket)
            .key("held")
            .set_version_id(v_held.clone())
            .legal_hold(hold(false))
            .send(),
    )
    .await;
    m.check(
        "PutObjectLegalHold OFF by the administrator",
        &lift,
        Expect::Ok,
    );
    let del = outcome(
        agent
            .delete_object()
            .bucket(&bucket)
            .key("held")
            .set_version_id(v_held.clone())
            .send(),
    )
    .await;
    m.check("DeleteObject after the hold is lifted", &del, Expect::Ok);
}

/// DeleteObjects: decided key by key, to the end.
async fn batch_deletes(run: &mut Run<'_>) {
    let agent = &run.agent;
    let admin = &run.admin;
    let bucket = run.bucket.clone();
    let v_comp = run.v_comp.clone();
    let m = &mut run.m;
    for k in ["free-1", "free-2"] {
        agent
            .put_object()
            .bucket(&bucket)
            .key(k)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .expect("put free");
    }
    let v_free1 = agent
        .head_object()
        .bucket(&bucket)
        .key("free-1")
        .send()
        .await
        .expect("head")
        .version_id;
    let v_free2 = agent
        .head_object()
        .bucket(&bucket)
        .key("free-2")
        .send()
        .await
        .expect("head")
        .version_id;
    let batch = admin
        .delete_objects()
        .bucket(&bucket)
        .delete(
            Delete::builder()
                .objects(ident("free-1", v_free1.as_deref()))
                .objects(ident("comp", v_comp.as_deref()))
                .objects(ident("free-2", v_free2.as_deref()))
                .build()
                .expect("delete"),
        )
        .bypass_governance_retention(true)
        .send()
        .await
        .expect("DeleteObjects answers 200");
    let deleted: Vec<&str> = batch.deleted().iter().filter_map(|d| d.key()).collect();
    let errors: Vec<(&str, &str, &str)> = batch
        .errors()
        .iter()
        .map(|e| {
            (
                e.key().unwrap_or(""),
                e.code().unwrap_or(""),
                e.message().unwrap_or(""),
            )
        })
        .collect();
    assert!(
        deleted.contains(&"free-1") && deleted.contains(&"free-2"),
        "{deleted:?}"
    );
    assert_eq!(
        errors,
        [("comp", "AccessDenied", wormgate_tests::locks::LOCKED)]
    );
    m.rows.push((
        "DeleteObjects with one locked key among free ones".into(),
        "200: free keys deleted, locked key AccessDenied".into(),
    ));
}

/// A copy does not inherit the source's lock.
async fn copies(run: &mut Run<'_>) {
    let agent = &run.agent;
    let bucket = run.bucket.clone();
    let v_comp = run.v_comp.clone();
    let m = &mut run.m;
    let copy = outcome(
        agent
            .copy_object()
            .bucket(&bucket)
            .key("copy-of-comp")
            .copy_source(match &v_comp {
                Some(v) => format!("{bucket}/comp?versionId={v}"),
                None => format!("{bucket}/comp"),
            })
            .send(),
    )
    .await;
    m.check("CopyObject from a locked source", &copy, Expect::Ok);
    let copy_head = agent
        .head_object()
        .bucket(&bucket)
        .key("copy-of-comp")
        .send()
        .await
        .expect("head copy");
    assert_eq!(
        copy_head.object_lock_mode(),
        None,
        "the copy inherited the lock"
    );
    let v_copy = copy_head.version_id;
    let del = outcome(
        agent
            .delete_object()
            .bucket(&bucket)
            .key("copy-of-comp")
            .set_version_id(v_copy)
            .send(),
    )
    .await;
    m.check("DeleteObject of the unlocked copy", &del, Expect::Ok);
}

/// Bad lock input.
async fn bad_lock_input(run: &mut Run<'_>) {
    let stack = run.stack;
    let agent = &run.agent;
    let bucket = run.bucket.clone();
    let plain = run.plain.clone();
    let m = &mut run.m;
    let url = format!("{}/{bucket}/bad", stack.gateway_url());
    let bad = signed_request(
        "PUT",
        &url,
        &[
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
            ("x-amz-object-lock-mode", "COMPLIANCE"),
            (
                "x-amz-object-lock-retain-until-date",
                "2099-01-01T00:00:00Z",
            ),
        ],
        full("no checksum"),
        ACCESS_KEY,
        SECRET_KEY,
    )
    .await;
    assert_eq!(
        (bad.status, bad.code()),
        (400, "InvalidRequest"),
        "{}",
        bad.body
    );
    assert!(
        bad.message().contains("Content-MD5 OR x-amz-checksum-"),
        "{}",
        bad.body
    );
    m.rows.push((
        "PutObject with lock headers, no checksum".into(),
        "400 InvalidRequest".into(),
    ));
    let bad = signed_request(
        "PUT",
        &url,
        &[
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
            ("content-md5", "A0fCJ9Sk0m/GX6XFQNhtzA=="),
            ("x-amz-object-lock-mode", "COMPLIANCE"),
        ],
        full("mode only"),
        ACCESS_KEY,
        SECRET_KEY,
    )
    .await;
    assert_eq!(
        (bad.status, bad.code()),
        (400, "InvalidArgument"),
        "{}",
        bad.body
    );
    m.rows.push((
        "PutObject with a mode and no date".into(),
        "400 InvalidArgument".into(),
    ));
    let past = outcome(
        agent
            .put_object()
            .bucket(&bucket)
            .key("past")
            .body(ByteStream::from_static(b"x"))
            .object_lock_mode(ObjectLockMode::Governance)
            .object_lock_retain_until_date(in_secs(-60))
            .send(),
    )
    .await;
    m.check(
        "PutObject with a date in the past",
        &past,
        Expect::Refused(400, "InvalidArgument"),
    );
    let no_lock_bucket = outcome(
        agent
            .put_object()
            .bucket(&plain)
            .key("x")
            .body(ByteStream::from_static(b"x"))
            .object_lock_mode(ObjectLockMode::Governance)
            .object_lock_retain_until_date(in_secs(60))
            .send(),
    )
    .await;
    m.check(
        "PutObject with lock headers on a bucket without lock",
        &no_lock_bucket,
        Expect::Refused(400, "InvalidRequest"),
    );
    agent
        .put_object()
        .bucket(&plain)
        .key("x")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("plain put");
    let ret_plain = outcome(
        agent
            .put_object_retention()
            .bucket(&plain)
            .key("x")
            .retention(retention(ObjectLockRetentionMode::Governance, 60))
            .send(),
    )
    .await;
    m.check(
        "PutObjectRetention on a bucket without lock",
        &ret_plain,
        Expect::Refused(400, "InvalidRequest"),
    );
}

/// Bucket settings.
async fn bucket_settings(run: &mut Run<'_>) {
    let agent = &run.agent;
    let admin = &run.admin;
    let native = run.native;
    let bucket = run.bucket.clone();
    let m = &mut run.m;
    let suspend = outcome(
        admin
            .put_bucket_versioning()
            .bucket(&bucket)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Suspended)
                    .build(),
            )
            .send(),
    )
    .await;
    m.check(
        "PutBucketVersioning Suspended on a lock bucket",
        &suspend,
        Expect::Refused(409, "InvalidBucketState"),
    );
    let lifecycle = outcome(
        admin
            .put_bucket_lifecycle_configuration()
            .bucket(&bucket)
            .lifecycle_configuration(
                BucketLifecycleConfiguration::builder()
                    .rules(
                        LifecycleRule::builder()
                            .id("expire-all")
                            .status(ExpirationStatus::Enabled)
                            .filter(LifecycleRuleFilter::builder().prefix("").build())
                            .expiration(LifecycleExpiration::builder().days(1).build())
                            .build()
                            .expect("rule"),
                    )
                    .build()
                    .expect("lifecycle"),
            )
            .send(),
    )
    .await;
    if native {
        m.check(
            "PutBucketLifecycle on a bucket holding locks (backend honours locks)",
            &lifecycle,
            Expect::Ok,
        );
    } else {
        m.check(
            "PutBucketLifecycle on a bucket holding locks",
            &lifecycle,
            Expect::Refused(403, "AccessDenied"),
        );
    }
    let drop_bucket = outcome(admin.delete_bucket().bucket(&bucket).send()).await;
    m.check(
        "DeleteBucket holding locked versions",
        &drop_bucket,
        Expect::Refused(403, "AccessDenied"),
    );
    let agent_cfg = outcome(
        agent
            .put_object_lock_configuration()
            .bucket(&bucket)
            .object_lock_configuration(
                ObjectLockConfiguration::builder()
                    .object_lock_enabled(ObjectLockEnabled::Enabled)
                    .build(),
            )
            .send(),
    )
    .await;
    m.check(
        "PutObjectLockConfiguration by the backup agent",
        &agent_cfg,
        Expect::Refused(403, "AccessDenied"),
    );
}

/// Default retention: versions written without headers get it.
async fn defaults(run: &mut Run<'_>) {
    let stack = run.stack;
    let agent = &run.agent;
    let admin = &run.admin;
    let bucket = run.bucket.clone();
    let m = &mut run.m;
    let set_default = outcome(
        admin
            .put_object_lock_configuration()
            .bucket(&bucket)
            .object_lock_configuration(default_retention(ObjectLockRetentionMode::Governance, 1))
            .send(),
    )
    .await;
    m.check(
        "PutObjectLockConfiguration GOVERNANCE 1 day (admin)",
        &set_default,
        Expect::Ok,
    );
    agent
        .put_object()
        .bucket(&bucket)
        .key("defaulted")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("put under default");
    let head = agent
        .head_object()
        .bucket(&bucket)
        .key("defaulted")
        .send()
        .await
        .expect("head");
    assert_eq!(
        head.object_lock_mode().map(|m| m.as_str()),
        Some("GOVERNANCE")
    );
    let del = outcome(
        agent
            .delete_object()
            .bucket(&bucket)
            .key("defaulted")
            .set_version_id(head.version_id.clone())
            .send(),
    )
    .await;
    m.check(
        "DeleteObject of a version under the default retention",
        &del,
        Expect::Locked,
    );
    let zero = signed_request(
        "PUT",
        &format!("{}/{bucket}?object-lock", stack.gateway_url()),
        &[("x-amz-content-sha256", "UNSIGNED-PAYLOAD")],
        full("<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>0</Days></DefaultRetention></Rule></ObjectLockConfiguration>"),
        wormgate_tests::ADMIN_KEY,
        wormgate_tests::ADMIN_SECRET,
    )
    .await;
    assert_eq!(
        (zero.status, zero.code()),
        (400, "InvalidArgument"),
        "{}",
        zero.body
    );
    m.rows.push((
        "PutObjectLockConfiguration with Days 0".into(),
        "400 InvalidArgument".into(),
    ));
}

/// Presigned requests get the same checks.
async fn presigned(run: &mut Run<'_>) {
    let agent = &run.agent;
    let bucket = run.bucket.clone();
    let v_comp = run.v_comp.clone();
    let m = &mut run.m;
    let presigned = agent
        .delete_object()
        .bucket(&bucket)
        .key("comp")
        .set_version_id(v_comp.clone())
        .presigned(
            aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(
                300,
            ))
            .expect("presign config"),
        )
        .await
        .expect("presign");
    let r = wormgate_tests::send_presigned(&presigned, full("")).await;
    assert_eq!((r.status, r.code()), (403, "AccessDenied"), "{}", r.body);
    m.rows.push((
        "Presigned DeleteObject of a locked version".into(),
        "403 AccessDenied".into(),
    ));
}

/// Expiry: a short retention ends, and then the version may go.
async fn expiry(run: &mut Run<'_>) {
    let agent = &run.agent;
    let bucket = run.bucket.clone();
    let m = &mut run.m;
    let v_short = put_locked(
        agent,
        &bucket,
        "short",
        ObjectLockMode::Compliance,
        in_secs(3),
    )
    .await;
    let early = outcome(
        agent
            .delete_object()
            .bucket(&bucket)
            .key("short")
            .set_version_id(v_short.clone())
            .send(),
    )
    .await;
    m.check(
        "DeleteObject one second before retain-until",
        &early,
        Expect::Locked,
    );
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let late = outcome(
        agent
            .delete_object()
            .bucket(&bucket)
            .key("short")
            .set_version_id(v_short)
            .send(),
    )
    .await;
    m.check("DeleteObject after retain-until", &late, Expect::Ok);
}

/// The reserved metadata is the gateway's alone.
async fn reserved_metadata(run: &mut Run<'_>) {
    let agent = &run.agent;
    let plain = run.plain.clone();
    let m = &mut run.m;
    let forged = outcome(
        agent
            .put_object()
            .bucket(&plain)
            .key("forged")
            .body(ByteStream::from_static(b"x"))
            .metadata("wormgate-retain-until", "2000-01-01T00:00:00Z")
            .send(),
    )
    .await;
    m.check(
        "PutObject setting x-amz-meta-wormgate-*",
        &forged,
        Expect::Refused(400, "InvalidArgument"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_profile_matrix() {
    let stack = Stack::start().await;
    let table = Box::pin(run_matrix(&stack, Profile::Gateway)).await;
    println!("{table}");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_profile_matrix() {
    let localstack = LocalStack::start().await;
    let stack = Stack::start_remote(localstack.backend(), Profile::Native).await;
    let table = Box::pin(run_matrix(&stack, Profile::Native)).await;
    println!("{table}");

    // The start-up probe: a bucket configured native whose backend has no lock is refused.
    let plain = stack.new_bucket("nolock").await;
    let mut settings = stack.settings.clone();
    settings
        .locks
        .bucket_profiles
        .insert(plain.clone(), Profile::Native);
    settings.locks.index_dir = stack.dir.path().join("probe-index");
    let err = wormgate::server::Server::new(&settings)
        .await
        .err()
        .expect("a native claim without backend lock must not start");
    assert!(err.to_string().contains("no object lock"), "{err}");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_agent_cannot_escalate() {
    let stack = Stack::start().await;
    let scoped = s3_client(&stack.gateway_url(), ACCESS_KEY, SECRET_KEY);
    let bucket = stack.new_bucket("perm").await;
    let r = outcome(scoped.delete_bucket().bucket(&bucket).send()).await;
    assert_eq!((r.status, r.code.as_str()), (403, "AccessDenied"), "{r:?}");
    stack.shutdown().await;
}
