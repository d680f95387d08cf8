//! The S3 listener over TLS (rustls), with a certificate made in the test: an SDK client that
//! trusts it works; a plain-HTTP client gets no S3 answer.

use aws_credential_types::Credentials;
use aws_sdk_s3::config::{BehaviorVersion, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use wormgate::config::TlsSettings;
use wormgate_tests::{ACCESS_KEY, REGION, SECRET_KEY, Stack, get_bytes, unique_bucket};

#[tokio::test]
async fn https_listener_serves_sdk_clients() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let cert_pem = certified.cert.pem();
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, &cert_pem).expect("write cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");

    let stack = Stack::start_with_tls(Some(TlsSettings { cert, key })).await;
    let endpoint = format!("https://localhost:{}", stack.gateway_addr.port());
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .tls_context(
            TlsContext::builder()
                .with_trust_store(TrustStore::empty().with_pem_certificate(cert_pem.as_bytes()))
                .build()
                .expect("tls context"),
        )
        .build_https();
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(Region::new(REGION))
        .force_path_style(true)
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
        .http_client(http)
        .build();
    let client = aws_sdk_s3::Client::from_conf(conf);

    let bucket = unique_bucket("tls");
    client
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create over TLS");
    client
        .put_object()
        .bucket(&bucket)
        .key("secret.bin")
        .body(ByteStream::from_static(b"over tls"))
        .send()
        .await
        .expect("put over TLS");
    assert_eq!(
        get_bytes(&client, &bucket, "secret.bin", None).await,
        b"over tls"
    );

    // Plain HTTP to the TLS port is not served.
    let plain = wormgate_tests::s3_client(&stack.gateway_url(), ACCESS_KEY, SECRET_KEY);
    assert!(plain.list_buckets().send().await.is_err());
    stack.shutdown().await;
}
