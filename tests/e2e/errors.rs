//! What goes wrong gets the S3 error AWS would give, and the gateway keeps serving.

use std::time::{Duration, SystemTime};

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use wormgate_tests::{
    ACCESS_KEY, SCOPED_BUCKET, SCOPED_KEY, SCOPED_SECRET, SECRET_KEY, Stack, chunked, full,
    s3_client, send, signed_request,
};

async fn still_serving(stack: &Stack, bucket: &str) {
    let out = stack
        .gateway()
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await;
    assert!(out.is_ok(), "the gateway must keep serving: {out:?}");
}

#[tokio::test]
async fn bad_credentials_and_requests_get_s3_errors() {
    let stack = Stack::start().await;
    let bucket = stack.new_bucket("errors").await;
    let url = format!("{}/{bucket}/k", stack.gateway_url());

    let wrong_secret =
        signed_request("GET", &url, &[], full(""), ACCESS_KEY, "not-the-secret").await;
    assert_eq!(
        (wrong_secret.status, wrong_secret.code()),
        (403, "SignatureDoesNotMatch"),
        "{wrong_secret:?}"
    );

    let unknown_key = signed_request("GET", &url, &[], full(""), "NOSUCHKEY", "whatever").await;
    assert_eq!(
        (unknown_key.status, unknown_key.code()),
        (403, "InvalidAccessKeyId"),
        "{unknown_key:?}"
    );

    let anonymous = send(
        http::Request::builder()
            .uri(&url)
            .body(full(""))
            .expect("req"),
    )
    .await;
    assert_eq!(
        (anonymous.status, anonymous.code()),
        (403, "AccessDenied"),
        "{anonymous:?}"
    );

    // A presigned URL whose validity ended an hour ago.
    let expired = PresigningConfig::builder()
        .start_time(SystemTime::now() - Duration::from_secs(3600))
        .expires_in(Duration::from_secs(60))
        .build()
        .expect("presign config");
    let presigned = stack
        .gateway()
        .get_object()
        .bucket(&bucket)
        .key("k")
        .presigned(expired)
        .await
        .expect("presign");
    let reply = wormgate_tests::send_presigned(&presigned, full("")).await;
    assert_eq!(
        (reply.status, reply.code()),
        (403, "AccessDenied"),
        "{reply:?}"
    );

    // An upload of unknown length (chunked transfer encoding, no Content-Length).
    let reply = signed_request(
        "PUT",
        &url,
        &[],
        chunked("no length"),
        ACCESS_KEY,
        SECRET_KEY,
    )
    .await;
    assert_eq!(
        (reply.status, reply.code()),
        (411, "MissingContentLength"),
        "{reply:?}"
    );

    // Malformed XML goes to the store, whose S3 error comes back as it is.
    let reply = signed_request(
        "POST",
        &format!("{}/{bucket}?delete", stack.gateway_url()),
        &[("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==")],
        full("<Delete><Object><Key>"),
        ACCESS_KEY,
        SECRET_KEY,
    )
    .await;
    assert_eq!(reply.status, 400, "{reply:?}");

    // A request the gateway does not recognise is refused and never reaches the store.
    let reply = signed_request(
        "PUT",
        &format!("{url}?frobnicate"),
        &[("content-length", "4")],
        full("data"),
        ACCESS_KEY,
        SECRET_KEY,
    )
    .await;
    assert_eq!(
        (reply.status, reply.code()),
        (403, "AccessDenied"),
        "{reply:?}"
    );
    assert!(reply.message().contains("does not recognise"), "{reply:?}");
    assert!(
        stack
            .direct()
            .head_object()
            .bucket(&bucket)
            .key("k")
            .send()
            .await
            .is_err()
    );

    still_serving(&stack, &bucket).await;
    stack.shutdown().await;
}

/// A reply sent before the request body was read to its end says `Connection: close`: the
/// connection cannot carry another request, and a client that pooled it would send its next
/// request into a closed socket. A completed upload keeps the connection.
#[tokio::test]
async fn a_reply_that_leaves_the_body_unread_closes_the_connection() {
    let mut stack = Stack::start().await;
    let bucket = stack.new_bucket("unread").await;
    let url = format!("{}/{bucket}/k", stack.gateway_url());
    let put = |url: String| async move {
        signed_request(
            "PUT",
            &url,
            &[("content-length", "4")],
            full("data"),
            ACCESS_KEY,
            SECRET_KEY,
        )
        .await
    };
    let closes = |reply: &wormgate_tests::Reply| {
        reply
            .headers
            .get(http::header::CONNECTION)
            .is_some_and(|v| v == "close")
    };

    let stored = put(url.clone()).await;
    assert_eq!(stored.status, 200, "{stored:?}");
    assert!(!closes(&stored), "{stored:?}");

    let refused = put(format!("{url}?frobnicate")).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(closes(&refused), "{refused:?}");

    stack.stop_backend();
    let mut outage = None;
    for _ in 0..50 {
        let reply = put(url.clone()).await;
        if reply.status == 503 {
            outage = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let outage = outage.expect("the gateway must answer 503 while the store is down");
    assert!(closes(&outage), "{outage:?}");

    stack.restart_backend().await;
    still_serving(&stack, &bucket).await;
    stack.shutdown().await;
}

#[tokio::test]
async fn users_reach_only_their_buckets() {
    let stack = Stack::start().await;
    let admin = stack.gateway();
    let other = stack.new_bucket("not-yours").await;
    admin
        .create_bucket()
        .bucket(SCOPED_BUCKET)
        .send()
        .await
        .expect("create scoped");
    admin
        .put_object()
        .bucket(&other)
        .key("secret")
        .body(ByteStream::from_static(b"s"))
        .send()
        .await
        .expect("put");

    let scoped = s3_client(&stack.gateway_url(), SCOPED_KEY, SCOPED_SECRET);
    scoped
        .put_object()
        .bucket(SCOPED_BUCKET)
        .key("mine")
        .body(ByteStream::from_static(b"m"))
        .send()
        .await
        .expect("own bucket");
    let err = scoped
        .get_object()
        .bucket(&other)
        .key("secret")
        .send()
        .await
        .expect_err("other bucket");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
    let err = scoped
        .copy_object()
        .bucket(SCOPED_BUCKET)
        .key("stolen")
        .copy_source(format!("{other}/secret"))
        .send()
        .await
        .expect_err("copy from another bucket");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
    stack.shutdown().await;
}

#[tokio::test]
async fn backend_outage_is_503_and_service_resumes() {
    let mut stack = Stack::start().await;
    let bucket = stack.new_bucket("outage").await;

    stack.stop_backend();
    // Give the store's accept loop a moment to close its listener.
    let mut reply = None;
    for _ in 0..50 {
        let r = signed_request(
            "GET",
            &format!("{}/{bucket}?list-type=2", stack.gateway_url()),
            &[],
            full(""),
            ACCESS_KEY,
            SECRET_KEY,
        )
        .await;
        if r.status == 503 {
            reply = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reply = reply.expect("the gateway must answer 503 while the store is down");
    assert_eq!(reply.code(), "ServiceUnavailable", "{reply:?}");
    assert!(reply.body.contains("<RequestId>"), "{reply:?}");
    assert!(reply.headers.contains_key("x-amz-request-id"));

    stack.restart_backend().await;
    still_serving(&stack, &bucket).await;
    stack.shutdown().await;
}
