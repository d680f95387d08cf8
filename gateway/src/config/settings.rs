//! The settings the gateway runs with, once the file and the environment are resolved.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use policy::lock::Profile;
use policy::permissions::Permissions;

/// A secret string that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    #[must_use]
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Which buckets a user may address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketScope {
    All,
    Only(Vec<String>),
}

impl BucketScope {
    #[must_use]
    pub fn allows(&self, bucket: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(list) => list.iter().any(|b| b == bucket),
        }
    }
}

/// A client identity.
#[derive(Debug, Clone)]
pub struct User {
    pub access_key: String,
    pub secret_key: Secret,
    pub buckets: BucketScope,
    pub permissions: Permissions,
}

/// Who enforces locks, per bucket, and the index.
#[derive(Debug, Clone)]
pub struct LockSettings {
    pub default_profile: Profile,
    pub bucket_profiles: BTreeMap<String, Profile>,
    pub index_dir: PathBuf,
    /// The lock index's page cache.
    pub index_cache_bytes: u64,
    /// Every committed lock record in memory too.
    pub index_records_in_memory: bool,
    pub max_retention_days: u32,
    pub auto_extend_up_to_days: Option<u32>,
    pub clock_tolerance_secs: u32,
}

impl LockSettings {
    #[must_use]
    pub fn profile_of(&self, bucket: &str) -> Profile {
        self.bucket_profiles
            .get(bucket)
            .copied()
            .unwrap_or(self.default_profile)
    }
}

/// The backend the gateway forwards to.
#[derive(Debug, Clone)]
pub enum BackendSettings {
    /// An s3s-fs store inside the gateway process, under `<data_dir>/objects`.
    Embedded,
    Remote(RemoteBackend),
}

#[derive(Debug, Clone)]
pub struct RemoteBackend {
    pub url: http::Uri,
    pub access_key: String,
    pub secret_key: Secret,
    pub region: String,
    pub ca_file: Option<PathBuf>,
    pub connect_timeout_secs: u64,
    pub response_timeout_secs: u64,
}

/// How far the gateway's clock may run ahead of the backend's before an expiry decision is
/// refused, in seconds (`[locks] clock_tolerance_secs`).
pub const DEFAULT_CLOCK_TOLERANCE_SECS: u32 = 300;

/// The longest BucketWorm period OSS accepts, in days (its documented limit).
pub const OSS_MAX_PERIOD_DAYS: u32 = 25_550;

/// OSS's own API, for BucketWorm.
#[derive(Debug, Clone)]
pub struct OssSettings {
    pub endpoint: http::Uri,
    pub region: String,
    pub access_key: String,
    pub secret_key: Secret,
}

/// The admin listener.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    pub listen: SocketAddr,
    /// `None`: generated at start-up (and kept in the data directory).
    pub token: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The validated settings the gateway runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub region: String,
    pub base_domain: Option<String>,
    pub tls: Option<TlsSettings>,
    pub backend: BackendSettings,
    /// Configured users. Empty means "generate one in the data directory" (see `credentials`).
    pub users: Vec<User>,
    pub locks: LockSettings,
    pub oss: Option<OssSettings>,
    pub admin: AdminSettings,
    /// Timeouts used with the embedded store, and defaults for a remote one.
    pub connect_timeout_secs: u64,
    pub response_timeout_secs: u64,
    /// After a shutdown signal, how long requests in flight may run on.
    pub shutdown_grace_secs: u64,
    /// Threads of the runtime that serves requests.
    pub worker_threads: usize,
    /// How long a client may take to send a request's headers.
    pub header_read_timeout_secs: u64,
    /// Connections the S3 listener serves at once.
    pub max_connections: usize,
}
