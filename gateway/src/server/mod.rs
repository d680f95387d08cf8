//! The listener: accepts connections (plain or TLS), gives each request an id, and hands it to
//! s3s, whose catch-all route is the gateway. `Server::run(listener, shutdown)` is the testable
//! entry point: tests bind `127.0.0.1:0` and call it.

pub mod embedded;
mod listen;
mod probe;
pub mod process;
pub mod tls;

pub use listen::Limits;
use listen::ReadThrough;
pub(crate) use listen::serve;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::HeaderValue;
use hyper::body::Incoming;
use hyper::service::service_fn;
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::backend::Backend;
use crate::backend::oss::worm::WormClient;
use crate::config::{BackendSettings, RemoteBackend, Settings, User};
use crate::enforce::Gateway;
use crate::enforce::Locks;
use crate::front::{BaseDomainHost, ForwardRoute, NoOperations, RequestId, UserAuth};
use crate::ops::rebuild::RebuildReport;
use crate::server::embedded::Embedded;
use policy::index::{LockIndex, SledIndex};
use policy::lock::Profile;

/// How often the clock's high-water mark is written to disk (when it moved).
const MARK_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("embedded store: {0}")]
    Embedded(std::io::Error),
    #[error("credentials: {0}")]
    Credentials(std::io::Error),
    #[error("backend: {0}")]
    Backend(#[from] crate::backend::BackendSetupError),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("start-up probe: {0}")]
    Probe(String),
    #[error("clock high-water mark: {0}")]
    Clock(String),
    #[error("lock index: {0}")]
    Index(#[from] policy::index::IndexError),
}

/// Opens the sled index, creating its directory.
///
/// # Errors
/// The directory cannot be created or the index cannot be opened.
pub fn open_index(
    dir: &std::path::Path,
    cache_bytes: u64,
    records_in_memory: bool,
) -> Result<Arc<dyn LockIndex>, StartError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        StartError::Index(policy::index::IndexError::Storage(format!(
            "{}: {e}",
            dir.display()
        )))
    })?;
    let index = SledIndex::open_with_cache(dir, cache_bytes)?;
    if !records_in_memory {
        return Ok(Arc::new(index));
    }
    let started = std::time::Instant::now();
    let index = index.with_records_in_memory()?;
    tracing::info!(
        records = index.len()?,
        secs = started.elapsed().as_secs_f64(),
        "lock records loaded into memory"
    );
    Ok(Arc::new(index))
}

/// Parts of a server a caller provides instead of the ones its settings make.
#[derive(Default)]
pub struct Overrides {
    /// A lock index of the caller's (in memory, or one that injects faults).
    pub index: Option<Arc<dyn LockIndex>>,
    /// The time decisions are made at.
    pub clock: Option<Arc<dyn crate::enforce::clock::Clock>>,
}

/// Persists the clock's mark and flushes the index: for a stop that cannot wait for `run` to
/// return (a second signal).
pub struct Closer(Arc<Gateway>);

impl Closer {
    pub fn close(&self) {
        self.0.close();
    }
}

/// A gateway ready to serve.
pub struct Server {
    service: S3Service,
    tls: Option<TlsAcceptor>,
    /// The listener's certificate, for a reload (SIGHUP).
    certificate: Option<Arc<crate::server::tls::ReloadableCert>>,
    /// Kept alive as long as the server: the in-process store behind an embedded default.
    _embedded: Option<Embedded>,
    /// The users clients may sign as (the generated one included).
    pub users: Vec<User>,
    gateway: Arc<Gateway>,
    /// How long in-flight requests may run on after shutdown is asked for.
    grace: Duration,
    /// Header read timeout and connection cap of the S3 listener.
    limits: Limits,
}

impl Server {
    /// Starts the embedded store if no backend is configured, loads or generates credentials,
    /// and builds the request path.
    ///
    /// # Errors
    /// The data directory, the TLS files or the backend settings are unusable.
    pub async fn new(settings: &Settings) -> Result<Self, StartError> {
        Self::with_index(settings, None).await
    }

    /// As `new`, with a lock index of the caller's instead of the sled one in the settings
    /// (an in-memory index, or one that injects faults in a test).
    ///
    /// # Errors
    /// As `new`.
    pub async fn with_index(
        settings: &Settings,
        index: Option<Arc<dyn LockIndex>>,
    ) -> Result<Self, StartError> {
        Self::build(settings, Overrides { index, clock: None }).await
    }

    /// As `new`, with the parts in `overrides` instead of the ones the settings make.
    ///
    /// # Errors
    /// As `new`.
    pub async fn build(settings: &Settings, overrides: Overrides) -> Result<Self, StartError> {
        let Overrides { index, clock } = overrides;
        let (remote, embedded) = match &settings.backend {
            BackendSettings::Remote(r) => (r.clone(), None),
            BackendSettings::Embedded => {
                let store = Embedded::start(&settings.data_dir.join("objects"))
                    .await
                    .map_err(StartError::Embedded)?;
                let remote = RemoteBackend {
                    url: store.endpoint.clone(),
                    access_key: store.access_key.clone(),
                    secret_key: store.secret_key.clone(),
                    region: settings.region.clone(),
                    ca_file: None,
                    connect_timeout_secs: settings.connect_timeout_secs,
                    response_timeout_secs: settings.response_timeout_secs,
                };
                (remote, Some(store))
            }
        };
        let mut users = settings.users.clone();
        if users.is_empty() {
            users.push(
                crate::config::credentials::load_or_generate(&settings.data_dir)
                    .map_err(StartError::Credentials)?,
            );
        }
        let backend = Backend::new(&remote)?;
        let index = match index {
            Some(index) => index,
            None => open_index(
                &settings.locks.index_dir,
                settings.locks.index_cache_bytes,
                settings.locks.index_records_in_memory,
            )?,
        };
        let time = crate::enforce::clock::TrustedTime::new(
            clock.unwrap_or_else(|| Arc::new(crate::enforce::clock::SystemClock)),
            Some(&settings.locks.index_dir),
            settings.locks.clock_tolerance_secs,
        )
        .map_err(|e| StartError::Clock(e.to_string()))?;
        let mut locks = Locks::new(index, settings.locks.clone()).with_time(Arc::new(time));
        if let Some(oss) = &settings.oss {
            locks = locks.with_worm(WormClient::new(
                oss,
                Duration::from_secs(settings.connect_timeout_secs.max(10)),
            )?);
        }
        let gateway = Arc::new(Gateway::new(
            backend,
            &users,
            settings.base_domain.clone(),
            locks,
        ));

        let mut builder = S3ServiceBuilder::new(NoOperations);
        if let Some(base_domain) = &settings.base_domain {
            builder.set_host(BaseDomainHost {
                base_domain: base_domain.clone(),
            });
        }
        builder.set_auth(UserAuth {
            gateway: Arc::clone(&gateway),
        });
        builder.set_route(ForwardRoute {
            gateway: Arc::clone(&gateway),
        });
        let service = builder.build();

        let certificate = settings
            .tls
            .as_ref()
            .map(|t| crate::server::tls::ReloadableCert::load(t).map(Arc::new))
            .transpose()
            .map_err(|e| StartError::Tls(e.to_string()))?;
        let tls = certificate
            .as_ref()
            .map(crate::server::tls::ReloadableCert::acceptor)
            .transpose()
            .map_err(|e| StartError::Tls(e.to_string()))?;
        probe::profiles_hold(&gateway, &settings.locks.bucket_profiles).await?;
        Ok(Self {
            service,
            tls,
            certificate,
            _embedded: embedded,
            users,
            gateway,
            grace: Duration::from_secs(settings.shutdown_grace_secs),
            limits: Limits {
                header_read_timeout: Duration::from_secs(settings.header_read_timeout_secs),
                max_connections: settings.max_connections,
            },
        })
    }

    /// What leaves the gateway's state whole on the way out (see `Closer`).
    #[must_use]
    pub fn closer(&self) -> Closer {
        Closer(Arc::clone(&self.gateway))
    }

    /// The admin and audit service, answering with bearer `token`.
    #[must_use]
    pub fn admin(&self, token: crate::config::Secret) -> crate::ops::admin::Admin {
        crate::ops::admin::Admin::new(&self.gateway, token)
    }

    /// Recreates the lock index from the backend (`wormgate index rebuild`).
    ///
    /// # Errors
    /// The backend cannot be listed or the index cannot be written.
    pub async fn rebuild_index(&self) -> Result<RebuildReport, crate::error::GatewayError> {
        self.gateway.rebuild_index().await
    }

    /// Compares the lock index with the backend (`wormgate index verify`); changes nothing.
    ///
    /// # Errors
    /// The backend cannot be listed or the index cannot be read.
    pub async fn verify_index(
        &self,
    ) -> Result<crate::ops::verify::VerifyReport, crate::error::GatewayError> {
        self.gateway.verify_index().await
    }

    /// What each bucket's profile will enforce, one line per bucket: the backend's buckets and
    /// the configured ones (`wormgate check-config`). Lists the backend, so it also shows that
    /// the backend answers with these keys.
    ///
    /// # Errors
    /// The backend cannot be listed.
    pub async fn describe_buckets(&self) -> Result<Vec<String>, crate::error::GatewayError> {
        let gw = &self.gateway;
        let mut buckets: std::collections::BTreeSet<String> =
            gw.bucket_names().await?.into_iter().collect();
        buckets.extend(gw.locks.settings().bucket_profiles.keys().cloned());
        let mut lines = Vec::with_capacity(buckets.len());
        for bucket in buckets {
            let what = match gw.locks.profile_of(&bucket) {
                Profile::Gateway => "gateway: the backend has no lock of its own; wormgate enforces every lock (index, and metadata on each object)".to_owned(),
                Profile::Native => "native: the backend's S3 Object Lock enforces, and wormgate enforces too".to_owned(),
                Profile::BucketRetention => match gw.locks.worms.get(&bucket) {
                    Some(w) => format!(
                        "bucket-retention: OSS WORM policy {} of {} days keeps every object; wormgate enforces per-object dates beyond it ({})",
                        w.state.as_str(),
                        w.period_days,
                        match gw.locks.settings().auto_extend_up_to_days {
                            Some(d) => format!("raising the period up to {d} days when a date needs it"),
                            None => "longer dates are reported as gaps".to_owned(),
                        }
                    ),
                    None => "bucket-retention: no WORM policy known".to_owned(),
                },
            };
            lines.push(format!("{bucket}: {what}"));
        }
        Ok(lines)
    }

    /// The listener's certificate when it speaks HTTPS: `reload` reads its files again.
    #[must_use]
    pub fn certificate(&self) -> Option<Arc<crate::server::tls::ReloadableCert>> {
        self.certificate.clone()
    }

    /// Whether the listener speaks HTTPS.
    #[must_use]
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves until `shutdown` completes, then stops accepting and lets in-flight requests
    /// finish (up to a grace period).
    ///
    /// # Errors
    /// Never for a single bad connection; only if the listener itself fails.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let service = self.service;
        let handler = service_fn(move |mut req: http::Request<Incoming>| {
            let service = service.clone();
            async move {
                let id = next_request_id();
                req.extensions_mut().insert(RequestId(id.clone()));
                let (method, path) = (req.method().clone(), req.uri().path().to_owned());
                let http1 = req.version() < http::Version::HTTP_2;
                let (req, body_read) = ReadThrough::track(req);
                let mut resp = service.call(req).await?;
                // After a reply sent before the request body was read to its end, hyper closes
                // the connection rather than wait for the rest. Saying so in the reply keeps the
                // client from pooling it and sending its next request into a closed socket.
                if http1 && body_read.is_some_and(|read| !read.load(Ordering::Acquire)) {
                    resp.headers_mut()
                        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
                }
                if resp.status().is_client_error() || resp.status().is_server_error() {
                    tracing::info!(request_id = %id, %method, %path, status = resp.status().as_u16(), "error reply");
                }
                if !resp.headers().contains_key("x-amz-request-id")
                    && let Ok(v) = HeaderValue::from_str(&id)
                {
                    resp.headers_mut().insert("x-amz-request-id", v);
                }
                Ok::<_, s3s::HttpError>(resp)
            }
        });
        let (stop_keeper, keeper) = keep_mark(Arc::clone(&self.gateway.locks.time))?;
        let served = serve(
            listener,
            self.tls,
            handler,
            shutdown,
            self.grace,
            self.limits,
        )
        .await;
        drop(stop_keeper);
        if keeper.join().is_err() {
            tracing::error!("the clock mark keeper panicked");
        }
        self.gateway.close();
        served
    }
}

/// Writes the clock's high-water mark every `MARK_EVERY` (when it moved) until the sender is
/// dropped. One thread for the server's life: a blocking-pool task each time would start new
/// threads, and with them new allocator arenas that raise the process's footprint.
fn keep_mark(
    time: Arc<crate::enforce::clock::TrustedTime>,
) -> std::io::Result<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)> {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("clock-mark".to_owned())
        .spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(MARK_EVERY)
            {
                if let Err(e) = time.persist() {
                    tracing::warn!(error = %e, "cannot persist the clock's high-water mark");
                }
            }
        })?;
    Ok((stop, thread))
}

static REQUEST_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A request id unique within this process and, with high probability, across restarts.
fn next_request_id() -> String {
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let prefix = PREFIX.get_or_init(|| {
        let mut b = [0u8; 4];
        let _ = getrandom::fill(&mut b);
        u32::from_le_bytes(b)
    });
    let n = REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix:08X}{n:08X}")
}

/// The address a listener is bound to, for messages.
#[must_use]
pub fn endpoint(addr: SocketAddr, tls: bool) -> String {
    format!("{}://{addr}", if tls { "https" } else { "http" })
}
