//! aws-sdk-s3 through wormgate to a real s3s-fs store: every everyday operation, compared byte
//! for byte with the same request sent straight to the store.

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use std::time::Duration;
use wormgate_tests::{Stack, full, get_bytes, pattern, send_presigned, unique_bucket};

#[tokio::test]
async fn everyday_operations_match_the_store() {
    let stack = Stack::start().await;
    let gw = stack.gateway();
    let direct = stack.direct();
    let bucket = unique_bucket("everyday");

    gw.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    gw.head_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("head bucket");
    let names: Vec<String> = gw
        .list_buckets()
        .send()
        .await
        .expect("list buckets")
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_owned))
        .collect();
    assert!(names.contains(&bucket), "{names:?}");

    // Single PUT with metadata and awkward key characters.
    let body = pattern(300_000, 1);
    let key = "dir/sub dir/a+b(1)!~ключ.bin";
    gw.put_object()
        .bucket(&bucket)
        .key(key)
        .metadata("origin", "backup-job-7")
        .content_type("application/x-test")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("put");
    assert_eq!(get_bytes(&gw, &bucket, key, None).await, body);
    assert_eq!(get_bytes(&direct, &bucket, key, None).await, body);
    let ranged = get_bytes(&gw, &bucket, key, Some("bytes=1000-1999")).await;
    assert_eq!(ranged, &body[1000..2000]);
    assert_eq!(
        ranged,
        get_bytes(&direct, &bucket, key, Some("bytes=1000-1999")).await
    );
    let head = gw
        .head_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await
        .expect("head");
    let head_direct = direct
        .head_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await
        .expect("head direct");
    assert_eq!(head.content_length(), Some(300_000));
    assert_eq!(head.e_tag(), head_direct.e_tag());
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("origin"))
            .map(String::as_str),
        Some("backup-job-7")
    );
    assert_eq!(head.content_type(), Some("application/x-test"));

    // Multipart: two parts, 5 MiB and a tail.
    let big = pattern(5 * 1024 * 1024 + 123_457, 2);
    let mp = gw
        .create_multipart_upload()
        .bucket(&bucket)
        .key("big.bin")
        .send()
        .await
        .expect("create mpu");
    let upload_id = mp.upload_id().expect("upload id");
    let mut parts = Vec::new();
    for (i, chunk) in big.chunks(5 * 1024 * 1024).enumerate() {
        let n = i32::try_from(i + 1).expect("part number");
        let p = gw
            .upload_part()
            .bucket(&bucket)
            .key("big.bin")
            .upload_id(upload_id)
            .part_number(n)
            .body(ByteStream::from(chunk.to_vec()))
            .send()
            .await
            .expect("upload part");
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .set_e_tag(p.e_tag().map(str::to_owned))
                .build(),
        );
    }
    gw.complete_multipart_upload()
        .bucket(&bucket)
        .key("big.bin")
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .expect("complete");
    assert_eq!(get_bytes(&gw, &bucket, "big.bin", None).await, big);

    // Copy.
    gw.copy_object()
        .bucket(&bucket)
        .key("copy.bin")
        .copy_source(format!("{bucket}/big.bin"))
        .send()
        .await
        .expect("copy");
    assert_eq!(get_bytes(&direct, &bucket, "copy.bin", None).await, big);

    // Listing: prefix, delimiter, continuation; same answers as the store.
    for i in 0..7 {
        gw.put_object()
            .bucket(&bucket)
            .key(format!("logs/2026/{i:02}.log"))
            .body(ByteStream::from(vec![b'x'; i]))
            .send()
            .await
            .expect("put log");
    }
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = gw
            .list_objects_v2()
            .bucket(&bucket)
            .prefix("logs/")
            .max_keys(3)
            .set_continuation_token(token.clone())
            .send()
            .await
            .expect("list page");
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let want: Vec<String> = (0..7).map(|i| format!("logs/2026/{i:02}.log")).collect();
    assert_eq!(keys, want);
    let top = gw
        .list_objects_v2()
        .bucket(&bucket)
        .delimiter("/")
        .send()
        .await
        .expect("list top");
    let prefixes: Vec<&str> = top
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, ["dir/", "logs/"]);
    let top_direct = direct
        .list_objects_v2()
        .bucket(&bucket)
        .delimiter("/")
        .send()
        .await
        .expect("list direct");
    let direct_keys: Vec<_> = top_direct.contents().iter().map(|o| o.key()).collect();
    let gw_keys: Vec<_> = top.contents().iter().map(|o| o.key()).collect();
    assert_eq!(gw_keys, direct_keys);

    // A key that is only a prefix of other keys does not exist (the embedded store keeps
    // prefixes as directories; AWS answers 404, and so must it).
    let err = gw
        .head_object()
        .bucket(&bucket)
        .key("logs/2026")
        .send()
        .await
        .expect_err("no such key");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));

    // An empty delimiter means "no delimiter" on AWS; the store alone would get it wrong.
    let all = gw
        .list_objects_v2()
        .bucket(&bucket)
        .delimiter("")
        .send()
        .await
        .expect("list all");
    assert_eq!(all.contents().len(), 2 + 1 + 7, "{:?}", all.contents());

    // Delete.
    gw.delete_object()
        .bucket(&bucket)
        .key("copy.bin")
        .send()
        .await
        .expect("delete");
    let gone = direct
        .head_object()
        .bucket(&bucket)
        .key("copy.bin")
        .send()
        .await;
    assert!(gone.is_err(), "the object must be gone from the store");

    // Presigned GET and PUT, executed by a plain HTTP client.
    let presign = PresigningConfig::expires_in(Duration::from_secs(300)).expect("presign config");
    let url = gw
        .put_object()
        .bucket(&bucket)
        .key("presigned.txt")
        .presigned(presign.clone())
        .await
        .expect("presign put");
    let reply = send_presigned(&url, full("sent with a presigned URL")).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let url = gw
        .get_object()
        .bucket(&bucket)
        .key("presigned.txt")
        .presigned(presign)
        .await
        .expect("presign get");
    let reply = send_presigned(&url, full("")).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body, "sent with a presigned URL");
    assert!(reply.headers.contains_key("x-amz-request-id"));

    stack.shutdown().await;
}

#[tokio::test]
async fn virtual_host_style_addresses_the_bucket() {
    let stack = Stack::start().await;
    let gw = stack.gateway();
    let bucket = stack.new_bucket("vhost").await;
    gw.put_object()
        .bucket(&bucket)
        .key("a/b.txt")
        .body(ByteStream::from_static(b"vhost"))
        .send()
        .await
        .expect("put");

    // The same object, addressed as http://<bucket>.s3.wormgate.test/a/b.txt.
    let url = format!("{}/a/b.txt", stack.gateway_url());
    let host = format!("{bucket}.s3.wormgate.test:{}", stack.gateway_addr.port());
    let reply = wormgate_tests::signed_request(
        "GET",
        &url,
        &[("host", host.as_str())],
        full(""),
        wormgate_tests::ACCESS_KEY,
        wormgate_tests::SECRET_KEY,
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body, "vhost");
    stack.shutdown().await;
}

/// An aws-chunked upload with a trailing CRC32 (what current SDKs send): the checksum reaches the
/// store, which verifies it; a wrong one is refused by the store.
#[tokio::test]
async fn trailing_checksums_reach_the_store() {
    use aws_sdk_s3::types::ChecksumMode;
    use base64::Engine as _;

    let stack = Stack::start().await;
    let bucket = stack.new_bucket("trailer").await;
    let data = pattern(150_000, 9);
    let crc =
        base64::engine::general_purpose::STANDARD.encode(crc32fast::hash(&data).to_be_bytes());

    let chunked_body = |crc: &str| {
        let mut body = Vec::new();
        for piece in data.chunks(100_000) {
            body.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            body.extend_from_slice(piece);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("0\r\nx-amz-checksum-crc32:{crc}\r\n\r\n").as_bytes());
        body
    };
    let put = |key: &'static str, body: Vec<u8>| {
        let url = format!("{}/{bucket}/{key}", stack.gateway_url());
        let len = body.len().to_string();
        let decoded = data.len().to_string();
        async move {
            wormgate_tests::signed_request(
                "PUT",
                &url,
                &[
                    ("content-encoding", "aws-chunked"),
                    ("content-length", len.as_str()),
                    ("x-amz-content-sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
                    ("x-amz-decoded-content-length", decoded.as_str()),
                    ("x-amz-trailer", "x-amz-checksum-crc32"),
                    ("x-amz-sdk-checksum-algorithm", "CRC32"),
                ],
                full(body),
                wormgate_tests::ACCESS_KEY,
                wormgate_tests::SECRET_KEY,
            )
            .await
        }
    };

    let reply = put("good", chunked_body(&crc)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let head = stack
        .direct()
        .head_object()
        .bucket(&bucket)
        .key("good")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("head direct");
    assert_eq!(head.checksum_crc32(), Some(crc.as_str()));
    assert_eq!(
        get_bytes(&stack.direct(), &bucket, "good", None).await,
        data
    );

    let reply = put("bad", chunked_body("AAAAAA==")).await;
    // The store's verdict comes back. (s3s-fs itself keeps the rejected bytes on disk; that is
    // the store's behaviour, not the gateway's.)
    assert_eq!(
        (reply.status, reply.code()),
        (400, "BadDigest"),
        "{reply:?}"
    );
    stack.shutdown().await;
}
