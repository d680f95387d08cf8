//! TLS on both sides, with certificates made in the test (rcgen): the S3 listener serves SDK
//! clients and takes a renewed certificate on SIGHUP without dropping a connection; an https
//! backend is trusted through a CA file, and not without it.

use aws_credential_types::Credentials;
use aws_sdk_s3::config::{BehaviorVersion, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use std::time::Duration;
use wormgate::config::TlsSettings;

use aws_sdk_s3::types::ObjectLockMode;
use policy::lock::Profile;
use wormgate::config::{RemoteBackend, Secret};
use wormgate_tests::certs::{self, TestCa};
use wormgate_tests::locks::{in_secs, lock_bucket, outcome, put_locked};
use wormgate_tests::process::{self, BACKEND_KEY, BACKEND_SECRET, Gateway, Store};
use wormgate_tests::{
    ACCESS_KEY, REGION, Reply, SECRET_KEY, Stack, empty_raw_body, get_bytes, send_on, unique_bucket,
};

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

/// Waits until the gateway's log says `what`.
async fn log_says(gw: &Gateway, what: &str) {
    for _ in 0..100 {
        if gw.log_text().contains(what) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the log never said {what:?}:\n{}", gw.log_text());
}

/// A certificate renewed on disk and SIGHUP: new handshakes get the new certificate, while a
/// connection opened before, with an upload half sent across the signal, finishes it and
/// serves its next request. A broken renewal changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_without_dropping_connections() {
    Box::pin(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::start_in(dir.path()).await;
        let ca = TestCa::new();
        let (first, renewed) = (ca.leaf("first"), ca.leaf("renewed"));
        let certs_dir = dir.path().join("certs");
        std::fs::create_dir_all(&certs_dir).expect("certs dir");
        let (cert, key) = first.write(&certs_dir);
        let config = process::write_config_with(
            dir.path(),
            &store.url(),
            &format!(
                "tls_cert = \"{}\"\ntls_key = \"{}\"",
                cert.display(),
                key.display()
            ),
            "",
        );
        let mut gw = Gateway::start(&config, &[]).await;
        assert!(gw.url.starts_with("https://"), "{}", gw.url);
        let addr: std::net::SocketAddr =
            gw.url.trim_start_matches("https://").parse().expect("addr");
        let host = format!("localhost:{}", addr.port());
        let connector = ca.connector();

        let (presented, mut open) = certs::connect(&connector, addr).await;
        assert_eq!(presented, first.der(), "the first certificate at start");
        let bucket = unique_bucket("reload");
        let Reply { status, body, .. } = send_on(
            &mut open,
            &host,
            "PUT",
            &format!("/{bucket}"),
            &[],
            empty_raw_body(),
        )
        .await;
        assert_eq!(status, 200, "{body}");

        // An upload of 4 MiB on that connection, its second half held back until after SIGHUP.
        let (tx, body) = wormgate_tests::held_body();
        let half = bytes::Bytes::from(vec![9u8; 2 << 20]);
        let mut held = open;
        let (path, authority) = (format!("/{bucket}/held.bin"), host.clone());
        let upload = tokio::spawn(async move {
            let reply = send_on(
                &mut held,
                &authority,
                "PUT",
                &path,
                &[("content-length", "4194304")],
                body,
            )
            .await;
            (reply, held)
        });
        tx.send(Ok(http_body::Frame::data(half.clone())))
            .await
            .expect("first half");
        tokio::time::sleep(Duration::from_millis(200)).await;

        renewed.write(&certs_dir);
        gw.signal("HUP");
        log_says(&gw, "TLS certificate reloaded").await;
        let (presented, mut fresh) = certs::connect(&connector, addr).await;
        assert_eq!(
            presented,
            renewed.der(),
            "a new connection gets the renewed certificate"
        );
        let Reply { status, body, .. } =
            send_on(&mut fresh, &host, "GET", "/", &[], empty_raw_body()).await;
        assert_eq!(status, 200, "{body}");

        tx.send(Ok(http_body::Frame::data(half)))
            .await
            .expect("second half");
        drop(tx);
        let (Reply { status, body, .. }, mut open) = upload.await.expect("upload task");
        assert_eq!(status, 200, "the upload across SIGHUP: {body}");
        let Reply { status, body, .. } = send_on(
            &mut open,
            &host,
            "HEAD",
            &format!("/{bucket}/held.bin"),
            &[],
            empty_raw_body(),
        )
        .await;
        assert_eq!(status, 200, "the old connection still serves: {body}");

        // A renewal that went wrong (a truncated certificate): the renewed one stays.
        std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nnot base64\n").expect("break");
        gw.signal("HUP");
        log_says(&gw, "cannot reload the TLS certificate").await;
        let (presented, mut after) = certs::connect(&connector, addr).await;
        assert_eq!(presented, renewed.der(), "a broken renewal changes nothing");
        let Reply { status, .. } =
            send_on(&mut after, &host, "GET", "/", &[], empty_raw_body()).await;
        assert_eq!(status, 200);
        drop((open, fresh, after));

        gw.stop_cleanly().await;
        drop(store);
    })
    .await;
}

/// An https backend whose certificate comes from a private CA: trusted through `ca_file`, and
/// locks are enforced as over http. Without the CA file the certificate is refused: the gateway
/// answers 503 and nothing reaches the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_backend_is_trusted_through_its_ca_file_only() {
    Box::pin(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = TestCa::new();
        let store = Store::start_with_tls(
            &dir.path().join("store"),
            "127.0.0.1:0".parse().expect("addr"),
            900,
            Some(ca.leaf("store").acceptor()),
        )
        .await;
        assert!(store.url().starts_with("https://"));
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).expect("ca file");
        let remote = RemoteBackend {
            url: store.url().parse().expect("url"),
            access_key: BACKEND_KEY.into(),
            secret_key: Secret::new(BACKEND_SECRET),
            region: REGION.into(),
            ca_file: Some(ca_file),
            connect_timeout_secs: 2,
            response_timeout_secs: 30,
        };

        let stack = Stack::start_remote(remote.clone(), Profile::Gateway).await;
        let agent = stack.gateway();
        let bucket = lock_bucket(&agent, "https").await;
        let kept = put_locked(
            &agent,
            &bucket,
            "kept",
            ObjectLockMode::Compliance,
            in_secs(3600),
        )
        .await;
        assert_eq!(
            get_bytes(&agent, &bucket, "kept", None).await,
            b"locked backup"
        );
        let deleted = outcome(
            agent
                .delete_object()
                .bucket(&bucket)
                .key("kept")
                .set_version_id(kept)
                .send(),
        )
        .await;
        assert_eq!(deleted.brief(), "403 AccessDenied", "{deleted:?}");
        stack.shutdown().await;

        let untrusted = RemoteBackend {
            ca_file: None,
            ..remote
        };
        let stack = Stack::start_remote(untrusted, Profile::Gateway).await;
        let agent = stack.gateway();
        let created = outcome(agent.create_bucket().bucket("never-there").send()).await;
        assert_eq!(created.status, 503, "{created:?}");
        let put = outcome(
            agent
                .put_object()
                .bucket(&bucket)
                .key("sneaked")
                .body(ByteStream::from_static(b"x"))
                .send(),
        )
        .await;
        assert_eq!(put.status, 503, "{put:?}");
        stack.shutdown().await;
        assert!(!dir.path().join("store/never-there").exists());
        assert!(!dir.path().join(format!("store/{bucket}/sneaked")).exists());
    })
    .await;
}
