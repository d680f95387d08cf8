//! Harness for wormgate's black-box tests: a real s3s-fs store and a real gateway, each on its own
//! loopback port (`Stack`), raw signed HTTP (`raw`), LocalStack (`localstack`), the OSS stand-in
//! (`oss`), the binary as a process (`process`), and lock helpers (`locks`).

use std::net::SocketAddr;
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_s3::config::{BehaviorVersion, Region};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use policy::lock::Profile;
use policy::permissions::Permissions;
use wormgate::config::{
    AdminSettings, BackendSettings, BucketScope, LockSettings, RemoteBackend, Secret, Settings,
    User,
};
pub mod certs;
mod localstack;
pub mod locks;
pub mod oss;
pub mod process;
mod raw;

pub use localstack::LocalStack;
pub use raw::*;

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

    /// Another gateway in front of the same store, with the same settings and its own index
    /// and data directories (a second sidecar on the bucket). Its clock is its own.
    ///
    /// # Panics
    /// When the gateway fails to start.
    pub async fn beside(&self) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut settings = self.settings.clone();
        settings.data_dir = dir.path().join("gateway");
        settings.locks.index_dir = dir.path().join("index");
        Self::launch(dir, None, self.backend_addr, settings).await
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
    /// A request to the gateway signed by hand (see `hand_signed`): the path as written,
    /// `unsigned` headers added after signing.
    pub async fn hand_signed(
        &self,
        keys: (&str, &str),
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        unsigned: &[(&'static str, &'static str)],
        body: &str,
    ) -> Reply {
        let url = self.gateway_url();
        hand_signed(&url, keys, method, path_and_query, headers, unsigned, body).await
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

/// Opens a stopped gateway's index. The gateway's last connection tasks may still hold it for
/// a moment after it stopped (sled takes a file lock): tried again for up to 10 s.
///
/// # Panics
/// When it cannot be opened by then.
pub async fn open_stopped_index(dir: &std::path::Path) -> policy::index::SledIndex {
    let mut last = None;
    for _ in 0..100 {
        match policy::index::SledIndex::open(dir) {
            Ok(index) => return index,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("index {}: {last:?}", dir.display());
}
