//! Harness for wormgate's black-box tests: a real s3s-fs store and a real gateway, each on its own
//! loopback port, and real clients (aws-sdk-s3, raw signed HTTP) pointed at them.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sdk_s3::config::{BehaviorVersion, Region};
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http_body_util::{BodyExt, combinators::BoxBody};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use policy::lock::Profile;
use policy::permissions::Permissions;
use wormgate::config::{
    AdminSettings, BackendSettings, BucketScope, LockSettings, RemoteBackend, Secret, Settings,
    User,
};
pub mod certs;
pub mod locks;
pub mod oss;
pub mod process;

use wormgate::server::Server;
use wormgate::server::embedded::Embedded;

pub const REGION: &str = "us-east-1";
pub const ACCESS_KEY: &str = "AGENTKEY";
pub const SECRET_KEY: &str = "agent-secret-key-for-tests";
/// An administrator: every permission (bypass, legal holds, bucket settings).
pub const ADMIN_KEY: &str = "ADMINKEY";
pub const ADMIN_SECRET: &str = "admin-secret-key-for-tests";
/// A second user whose only bucket is `SCOPED_BUCKET`.
pub const SCOPED_KEY: &str = "SCOPEDKEY";
pub const SCOPED_SECRET: &str = "scoped-secret-key-for-tests";
pub const SCOPED_BUCKET: &str = "scoped-only";
/// The admin listener's bearer token.
pub const ADMIN_TOKEN: &str = "admin-token-for-the-tests";

/// The gateway's clock in the tests: the host's, moved forward on demand.
#[derive(Debug, Default)]
pub struct ShiftedClock(std::sync::atomic::AtomicI64);

impl ShiftedClock {
    /// Moves the clock forward.
    pub fn advance(&self, by: chrono::TimeDelta) {
        self.0
            .fetch_add(by.num_seconds(), std::sync::atomic::Ordering::SeqCst);
    }
}

impl wormgate::enforce::clock::Clock for ShiftedClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now()
            + chrono::TimeDelta::seconds(self.0.load(std::sync::atomic::Ordering::SeqCst))
    }
}

/// A store and a gateway in front of it.
pub struct Stack {
    pub dir: tempfile::TempDir,
    /// The in-process s3s-fs store, when the stack uses one.
    pub backend: Option<Embedded>,
    pub backend_addr: SocketAddr,
    backend_keys: Option<(String, Secret)>,
    pub settings: Settings,
    pub gateway_addr: SocketAddr,
    /// The admin and audit listener.
    pub admin_addr: SocketAddr,
    /// The gateway's clock.
    pub clock: std::sync::Arc<ShiftedClock>,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// The gateway's settings for a test: the test users, a base domain, an index in `dir`.
#[must_use]
pub fn test_settings(
    dir: &std::path::Path,
    backend: RemoteBackend,
    profile: Profile,
    tls: Option<wormgate::config::TlsSettings>,
) -> Settings {
    Settings {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.join("gateway"),
        region: REGION.into(),
        base_domain: Some("s3.wormgate.test".into()),
        tls,
        backend: BackendSettings::Remote(backend),
        users: vec![
            User {
                access_key: ACCESS_KEY.into(),
                secret_key: Secret::new(SECRET_KEY),
                buckets: BucketScope::All,
                permissions: Permissions::BACKUP,
            },
            User {
                access_key: ADMIN_KEY.into(),
                secret_key: Secret::new(ADMIN_SECRET),
                buckets: BucketScope::All,
                permissions: Permissions::ALL,
            },
            User {
                access_key: SCOPED_KEY.into(),
                secret_key: Secret::new(SCOPED_SECRET),
                buckets: BucketScope::Only(vec![SCOPED_BUCKET.into()]),
                permissions: Permissions::BACKUP,
            },
        ],
        locks: LockSettings {
            default_profile: profile,
            bucket_profiles: std::collections::BTreeMap::new(),
            index_dir: dir.join("index"),
            index_cache_bytes: policy::index::DEFAULT_CACHE_BYTES,
            index_records_in_memory: false,
            max_retention_days: policy::lock::Period::MAX_DAYS,
            auto_extend_up_to_days: None,
            clock_tolerance_secs: wormgate::enforce::clock::DEFAULT_TOLERANCE_SECS,
        },
        oss: None,
        admin: AdminSettings {
            listen: "127.0.0.1:0".parse().expect("addr"),
            token: Some(Secret::new(ADMIN_TOKEN)),
        },
        connect_timeout_secs: 2,
        response_timeout_secs: 30,
        shutdown_grace_secs: 10,
        worker_threads: 1,
        header_read_timeout_secs: 30,
        max_connections: 1024,
    }
}

/// A running gateway: its S3 and admin addresses, and how to stop it.
struct Running {
    addr: SocketAddr,
    admin_addr: SocketAddr,
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start_gateway(settings: &Settings, clock: &std::sync::Arc<ShiftedClock>) -> Running {
    let clock: std::sync::Arc<dyn wormgate::enforce::clock::Clock> = clock.clone();
    let server = Server::build(
        settings,
        wormgate::server::Overrides {
            index: None,
            clock: Some(clock),
        },
    )
    .await
    .expect("gateway");
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind gateway");
    let admin_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
    let addr = listener.local_addr().expect("addr");
    let admin_addr = admin_listener.local_addr().expect("addr");
    let admin = server.admin(settings.admin.token.clone().expect("token"));
    let (stop, stopped) = oneshot::channel::<()>();
    let (admin_stop, admin_stopped) = oneshot::channel::<()>();
    tokio::spawn(admin.run(admin_listener, async {
        let _ = admin_stopped.await;
    }));
    let done = tokio::spawn(async move {
        let r = server
            .run(listener, async {
                let _ = stopped.await;
            })
            .await;
        let _ = admin_stop.send(());
        r
    });
    Running {
        addr,
        admin_addr,
        stop,
        done,
    }
}

impl Stack {
    /// Starts a fresh store and a gateway.
    ///
    /// # Panics
    /// When anything fails to start: the test cannot run.
    pub async fn start() -> Self {
        Self::start_with_tls(None).await
    }

    /// Starts a fresh store and a gateway whose listener speaks TLS with `tls`, if given.
    ///
    /// # Panics
    /// When anything fails to start: the test cannot run.
    pub async fn start_with_tls(tls: Option<wormgate::config::TlsSettings>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let backend_addr = listener.local_addr().expect("addr");
        let backend = Embedded::start_on(&dir.path().join("store"), listener).expect("s3s-fs");
        let remote = RemoteBackend {
            url: backend.endpoint.clone(),
            access_key: backend.access_key.clone(),
            secret_key: backend.secret_key.clone(),
            region: REGION.into(),
            ca_file: None,
            connect_timeout_secs: 2,
            response_timeout_secs: 30,
        };
        let settings = test_settings(dir.path(), remote, Profile::Gateway, tls);
        Self::launch(dir, Some(backend), backend_addr, settings).await
    }

    async fn launch(
        dir: tempfile::TempDir,
        backend: Option<Embedded>,
        backend_addr: SocketAddr,
        settings: Settings,
    ) -> Self {
        let clock = std::sync::Arc::new(ShiftedClock::default());
        let running = start_gateway(&settings, &clock).await;
        Self {
            dir,
            backend,
            backend_addr,
            backend_keys: None,
            settings,
            gateway_addr: running.addr,
            admin_addr: running.admin_addr,
            clock,
            stop: Some(running.stop),
            done: Some(running.done),
        }
    }

    /// Starts a gateway in front of the OSS stand-in, with `buckets` in the bucket-retention
    /// profile (their WORM policies must exist already) and `auto_extend_up_to_days`.
    ///
    /// # Panics
    /// When the gateway fails to start.
    pub async fn start_oss(
        oss: &oss::OssBackend,
        buckets: &[&str],
        auto_extend_up_to_days: Option<u32>,
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut settings = test_settings(dir.path(), oss_remote(oss), Profile::Gateway, None);
        for b in buckets {
            settings
                .locks
                .bucket_profiles
                .insert((*b).to_owned(), Profile::BucketRetention);
        }
        settings.locks.auto_extend_up_to_days = auto_extend_up_to_days;
        settings.oss = Some(oss_settings(oss));
        Self::launch(dir, None, oss.addr, settings).await
    }

    /// Starts a gateway in front of a store that runs elsewhere (LocalStack), with `profile`.
    ///
    /// # Panics
    /// When the gateway fails to start.
    pub async fn start_remote(remote: RemoteBackend, profile: Profile) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend_addr = remote
            .url
            .authority()
            .and_then(|a| a.as_str().parse().ok())
            .expect("backend address");
        let settings = test_settings(dir.path(), remote, profile, None);
        Self::launch(dir, None, backend_addr, settings).await
    }

    /// Stops the gateway and starts it again with the same settings (and index directory), on
    /// a new port. Clients made before point at the old port.
    ///
    /// # Panics
    /// When the gateway fails to stop or start.
    pub async fn restart_gateway(&mut self) {
        self.stop_gateway().await;
        let running = start_gateway(&self.settings, &self.clock).await;
        self.gateway_addr = running.addr;
        self.admin_addr = running.admin_addr;
        self.stop = Some(running.stop);
        self.done = Some(running.done);
    }

    /// Stops the gateway (its index is closed); `restart_gateway` starts it again.
    pub async fn stop_gateway_for_test(&mut self) {
        self.stop_gateway().await;
    }

    async fn stop_gateway(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            done.await.expect("join").expect("gateway ended cleanly");
        }
    }

    /// An SDK client that talks to the gateway as the administrator.
    #[must_use]
    pub fn admin(&self) -> aws_sdk_s3::Client {
        s3_client(&self.gateway_url(), ADMIN_KEY, ADMIN_SECRET)
    }

    /// Creates a fresh bucket through the gateway and returns its name.
    ///
    /// # Panics
    /// When the bucket cannot be created.
    pub async fn new_bucket(&self, prefix: &str) -> String {
        let bucket = unique_bucket(prefix);
        self.gateway()
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("create bucket");
        bucket
    }

    /// GET on the admin listener, with `token` as the bearer if given.
    pub async fn admin_get(&self, path_and_query: &str, token: Option<&str>) -> Reply {
        let mut req = http::Request::builder()
            .method("GET")
            .uri(format!("http://{}{path_and_query}", self.admin_addr));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        send(req.body(empty_raw_body()).expect("request")).await
    }

    #[must_use]
    pub fn gateway_url(&self) -> String {
        format!("http://{}", self.gateway_addr)
    }

    /// An SDK client that talks to the gateway as the backup agent.
    #[must_use]
    pub fn gateway(&self) -> aws_sdk_s3::Client {
        s3_client(&self.gateway_url(), ACCESS_KEY, SECRET_KEY)
    }

    /// An SDK client that talks straight to the store, for byte-for-byte comparisons.
    ///
    /// # Panics
    /// When the store was stopped.
    #[must_use]
    pub fn direct(&self) -> aws_sdk_s3::Client {
        let b = self.backend.as_ref().expect("backend running");
        s3_client(
            &b.endpoint.to_string(),
            &b.access_key,
            b.secret_key.expose(),
        )
    }

    /// Stops the store (the gateway keeps running).
    ///
    /// # Panics
    /// When the store was already stopped.
    pub fn stop_backend(&mut self) {
        let store = self.backend.take().expect("backend running");
        self.backend_keys = Some((store.access_key.clone(), store.secret_key.clone()));
    }

    /// Starts the store again on its old port, over its old directory, with its old keys.
    ///
    /// # Panics
    /// When the store is running or its port cannot be bound again.
    pub async fn restart_backend(&mut self) {
        let (access_key, secret_key) = self.backend_keys.take().expect("backend stopped");
        // The old accept loop may need a moment to let go of the port.
        let mut listener = None;
        for _ in 0..100 {
            if let Ok(l) = TcpListener::bind(self.backend_addr).await {
                listener = Some(l);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let listener = listener.expect("rebind backend port");
        self.backend = Some(
            Embedded::start_with_keys(
                &self.dir.path().join("store"),
                listener,
                access_key,
                secret_key,
            )
            .expect("restart s3s-fs"),
        );
    }

    /// Stops the gateway and waits for it.
    ///
    /// # Panics
    /// When the gateway's task failed.
    pub async fn shutdown(mut self) {
        self.stop_gateway().await;
    }
}

/// The S3-compatible side of the OSS stand-in, as the gateway's backend.
#[must_use]
pub fn oss_remote(oss: &oss::OssBackend) -> RemoteBackend {
    RemoteBackend {
        url: oss.endpoint().parse().expect("url"),
        access_key: oss.store.access_key.clone(),
        secret_key: oss.store.secret_key.clone(),
        region: REGION.into(),
        ca_file: None,
        connect_timeout_secs: 2,
        response_timeout_secs: 30,
    }
}

/// OSS's own API on the stand-in, for BucketWorm.
#[must_use]
pub fn oss_settings(oss: &oss::OssBackend) -> wormgate::config::OssSettings {
    wormgate::config::OssSettings {
        endpoint: oss.endpoint().parse().expect("url"),
        region: "cn-hangzhou".into(),
        access_key: oss.store.access_key.clone(),
        secret_key: oss.store.secret_key.clone(),
    }
}

/// An aws-sdk-s3 client for an endpoint, path-style, plain HTTP.
#[must_use]
pub fn s3_client(endpoint: &str, access_key: &str, secret_key: &str) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .force_path_style(true)
        .credentials_provider(Credentials::new(access_key, secret_key, None, None, "test"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// A body for raw requests.
pub type RawBody = BoxBody<Bytes, std::convert::Infallible>;

/// An empty body for raw requests.
#[must_use]
pub fn empty_raw_body() -> RawBody {
    http_body_util::Empty::new().boxed()
}

/// A raw HTTP reply, whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    /// A response read whole (status, headers, body as text).
    ///
    /// # Panics
    /// When the body cannot be read.
    pub async fn read(resp: http::Response<hyper::body::Incoming>) -> Self {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        Self {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// The text of `<Code>` in an S3 error body.
    #[must_use]
    pub fn code(&self) -> &str {
        between(&self.body, "<Code>", "</Code>").unwrap_or("")
    }
    #[must_use]
    pub fn message(&self) -> &str {
        between(&self.body, "<Message>", "</Message>").unwrap_or("")
    }
}

fn between<'a>(s: &'a str, a: &str, b: &str) -> Option<&'a str> {
    let start = s.find(a)? + a.len();
    let end = s[start..].find(b)? + start;
    Some(&s[start..end])
}

/// Sends a request signed with SigV4 (`UNSIGNED-PAYLOAD`, or the trailer variant when the headers
/// say `STREAMING-UNSIGNED-PAYLOAD-TRAILER`) by `access_key`/`secret_key`.
///
/// # Panics
/// When the request cannot be built or sent at all.
pub async fn signed_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: RawBody,
    access_key: &str,
    secret_key: &str,
) -> Reply {
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut req = req.body(body).expect("request");
    sign_request(&mut req, access_key, secret_key);
    send(req).await
}

/// Signs `req` in place with SigV4 as `access_key`/`secret_key` (`UNSIGNED-PAYLOAD`, or the
/// trailer variant when its headers say `STREAMING-UNSIGNED-PAYLOAD-TRAILER`).
///
/// # Panics
/// When the request cannot be signed (a header value that is not ASCII).
pub fn sign_request<B>(req: &mut http::Request<B>, access_key: &str, secret_key: &str) {
    let identity: Identity = Credentials::new(access_key, secret_key, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.percent_encoding_mode = aws_sigv4::http_request::PercentEncodingMode::Single;
    // S3 signs the path as sent: `/b/./k` must reach the gateway as `/b/./k`, signed so.
    settings.uri_path_normalization_mode =
        aws_sigv4::http_request::UriPathNormalizationMode::Disabled;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .expect("params")
        .into();
    let pairs: Vec<(&str, &str)> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str(), v.to_str().expect("ascii")))
        .collect();
    let trailer = req
        .headers()
        .get("x-amz-content-sha256")
        .is_some_and(|v| v.as_bytes() == b"STREAMING-UNSIGNED-PAYLOAD-TRAILER");
    let payload = if trailer {
        SignableBody::StreamingUnsignedPayloadTrailer
    } else {
        SignableBody::UnsignedPayload
    };
    let url = req.uri().to_string();
    let signable = SignableRequest::new(req.method().as_str(), &url, pairs.into_iter(), payload)
        .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    instructions.apply_to_request_http1x(req);
}

/// The sending end of a [`held_body`].
pub type BodyFeed =
    tokio::sync::mpsc::Sender<Result<http_body::Frame<Bytes>, std::convert::Infallible>>;

/// A request body the test feeds piece by piece (`feed.send(Ok(Frame::data(..)))`), so that an
/// upload can be held half sent; it ends when the feed is dropped.
#[must_use]
pub fn held_body() -> (BodyFeed, RawBody) {
    let (feed, mut rx) = tokio::sync::mpsc::channel(4);
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    (feed, http_body_util::StreamBody::new(stream).boxed())
}

/// A request signed as the backup agent and sent on one open HTTP/1.1 connection (`authority`
/// is the `Host` it is signed for), for tests that must know which connection carries it.
///
/// # Panics
/// When the connection is closed or the request cannot be sent.
pub async fn send_on(
    sender: &mut hyper::client::conn::http1::SendRequest<RawBody>,
    authority: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: RawBody,
) -> Reply {
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("http://{authority}{path}"))
        .header("host", authority);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut req = req.body(body).expect("request");
    sign_request(&mut req, ACCESS_KEY, SECRET_KEY);
    *req.uri_mut() = path.parse().expect("origin-form path");
    sender.ready().await.expect("connection open");
    Reply::read(sender.send_request(req).await.expect("response")).await
}

/// The path as S3 signs it: percent-decoded, then every byte but `A-Za-z0-9-._~/` as `%XX`.
#[must_use]
pub fn canonical_path(path: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(path).collect::<Vec<u8>>();
    let mut out = String::new();
    for b in decoded {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A request to `base_url`, signed by `keys` for the path as S3 canonicalises it and sent with
/// the path as written (how a hand-made client sends `%2E` or `//`, which an SDK never sends);
/// `unsigned` headers are added after signing, as whoever holds a request could.
///
/// # Panics
/// When the request cannot be built or sent at all.
pub async fn hand_signed(
    base_url: &str,
    keys: (&str, &str),
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    unsigned: &[(&'static str, &'static str)],
    body: &str,
) -> Reply {
    let (path, query) = path_and_query
        .split_once('?')
        .map_or((path_and_query, None), |(p, q)| (p, Some(q)));
    let with_query = |p: String| match query {
        Some(q) => format!("{base_url}{p}?{q}"),
        None => format!("{base_url}{p}"),
    };
    let mut req = http::Request::builder()
        .method(method)
        .uri(with_query(canonical_path(path)));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = if body.is_empty() {
        empty_raw_body()
    } else {
        full(Bytes::from(body.to_owned()))
    };
    let mut req = req.body(body).expect("request");
    sign_request(&mut req, keys.0, keys.1);
    for (k, v) in unsigned {
        req.headers_mut()
            .insert(*k, http::HeaderValue::from_static(v));
    }
    *req.uri_mut() = with_query(path.to_owned()).parse().expect("uri");
    send(req).await
}

/// The Content-MD5 of a body.
#[must_use]
pub fn content_md5(body: &str) -> String {
    use base64::Engine as _;
    use md5::Digest as _;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body.as_bytes()))
}

/// Sends a request as it is.
///
/// # Panics
/// When it cannot be sent at all.
pub async fn send(req: http::Request<RawBody>) -> Reply {
    let client: Client<HttpConnector, RawBody> = Client::builder(TokioExecutor::new()).build_http();
    Reply::read(client.request(req).await.expect("send")).await
}

/// Sends a presigned request as a plain HTTP client would: its method, URL and headers, no
/// signing of its own.
///
/// # Panics
/// When it cannot be sent at all.
pub async fn send_presigned(
    presigned: &aws_sdk_s3::presigning::PresignedRequest,
    body: RawBody,
) -> Reply {
    let mut req = http::Request::builder()
        .method(presigned.method())
        .uri(presigned.uri());
    for (k, v) in presigned.headers() {
        req = req.header(k, v);
    }
    send(req.body(body).expect("presigned request")).await
}

/// A whole body.
#[must_use]
pub fn full(bytes: impl Into<Bytes>) -> RawBody {
    http_body_util::Full::new(bytes.into()).boxed()
}

/// A streamed body of unknown length (sent chunked).
#[must_use]
pub fn chunked(bytes: impl Into<Bytes>) -> RawBody {
    let chunk: Result<http_body::Frame<Bytes>, std::convert::Infallible> =
        Ok(http_body::Frame::data(bytes.into()));
    http_body_util::StreamBody::new(futures::stream::iter([chunk])).boxed()
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
#[must_use]
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A bucket name unique within the test run.
#[must_use]
pub fn unique_bucket(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Reads a whole object with the SDK.
///
/// # Panics
/// When the object cannot be read.
pub async fn get_bytes(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    range: Option<&str>,
) -> Vec<u8> {
    let mut req = client.get_object().bucket(bucket).key(key);
    if let Some(r) = range {
        req = req.range(r);
    }
    let out = req.send().await.expect("get_object");
    out.body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

/// LocalStack, started for a test on a free loopback port and killed when dropped.
pub struct LocalStack {
    pid: u32,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl LocalStack {
    /// Installs LocalStack if needed (`tests/localstack.sh`), starts it, and waits until its S3
    /// answers.
    ///
    /// # Panics
    /// When it cannot be installed or does not come up within two minutes.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("localstack.sh");
        let out = tokio::process::Command::new("bash")
            .arg(&script)
            .arg("start")
            .arg(dir.path())
            .arg(port.to_string())
            .output()
            .await
            .expect("run localstack.sh");
        assert!(
            out.status.success(),
            "localstack.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pid: u32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("localstack pid");
        let me = Self {
            pid,
            port,
            _dir: dir,
        };
        let health = format!("http://127.0.0.1:{port}/_localstack/health");
        let client: Client<HttpConnector, RawBody> =
            Client::builder(TokioExecutor::new()).build_http();
        for _ in 0..240 {
            let req = http::Request::get(&health).body(full("")).expect("request");
            if let Ok(resp) = client.request(req).await {
                let body = resp.into_body().collect().await.map(|b| b.to_bytes());
                if let Ok(body) = body
                    && String::from_utf8_lossy(&body).contains("\"s3\": \"running\"")
                {
                    return me;
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("LocalStack did not come up on port {port}");
    }

    /// The backend settings for the gateway (LocalStack takes any keys).
    #[must_use]
    pub fn backend(&self) -> RemoteBackend {
        RemoteBackend {
            url: format!("http://127.0.0.1:{}", self.port)
                .parse()
                .expect("url"),
            access_key: "wormgate-backend".into(),
            secret_key: Secret::new("wormgate-backend-secret"),
            region: REGION.into(),
            ca_file: None,
            connect_timeout_secs: 5,
            response_timeout_secs: 60,
        }
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        // SIGTERM can hang LocalStack: kill it outright.
        let _ = std::process::Command::new("kill")
            .arg("-9")
            .arg(self.pid.to_string())
            .status();
    }
}
