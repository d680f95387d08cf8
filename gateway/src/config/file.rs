//! The configuration file's sections, as written: every field optional, unknown fields
//! refused.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[allow(clippy::wildcard_imports)]
use super::*;

/// The configuration file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The S3 listener and the gateway's own state.
    #[serde(default)]
    pub server: ServerSection,
    /// The object store behind the gateway. Absent: an embedded local store under the data dir.
    pub backend: Option<BackendSection>,
    /// The keys clients sign with. Absent (and none in the environment): one user is generated
    /// and kept in the data directory.
    #[serde(default)]
    pub users: Vec<UserSection>,
    /// Who enforces locks, and where the lock index lives.
    #[serde(default)]
    pub locks: LocksSection,
    /// `[oss]`: Alibaba OSS's own API, for the `bucket-retention` profile.
    pub oss: Option<OssSection>,
    /// `[admin]`: the admin and audit listener.
    #[serde(default)]
    pub admin: AdminSection,
}

/// `[oss]`: where OSS's own API answers (BucketWorm is not part of its S3-compatible API).
/// The keys default to the backend's.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OssSection {
    /// OSS's own endpoint, e.g. `https://oss-cn-hangzhou.aliyuncs.com`. Env:
    /// `WORMGATE_OSS_ENDPOINT`.
    pub endpoint: Option<String>,
    /// The region the V4 signature is made for, e.g. `cn-hangzhou`. Env: `WORMGATE_OSS_REGION`.
    pub region: Option<String>,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    pub secret_key_file: Option<PathBuf>,
}

/// `[admin]`: health, readiness, metrics and the retention audit, on their own address.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// Default `127.0.0.1:9001`. Env: `WORMGATE_ADMIN_LISTEN`.
    pub listen: Option<SocketAddr>,
    /// Bearer token for every route but `/healthz`. Env: `WORMGATE_ADMIN_TOKEN`. With none
    /// set, one is generated, kept in `<data_dir>/admin-token` and printed at start-up.
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
}

/// `[locks]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocksSection {
    /// Profile of buckets not listed in `buckets`: `gateway` (the backend has no lock; the
    /// gateway alone enforces), `native` (the backend has S3 Object Lock; both enforce) or
    /// `bucket-retention` (the backend has one WORM period per bucket, Alibaba OSS; needs
    /// `[oss]`). Default `gateway`. Env: `WORMGATE_PROFILE`.
    pub profile: Option<String>,
    /// Profile per bucket, e.g. `{ veeam-repo = "native" }`. A `native` bucket is probed at
    /// start-up: the gateway refuses to start if the backend reports no object lock on it; a
    /// `bucket-retention` bucket likewise if OSS reports no WORM policy on it.
    #[serde(default)]
    pub buckets: BTreeMap<String, String>,
    /// Directory of the lock index (sled). Default `<data_dir>/index`. Env: `WORMGATE_INDEX_DIR`.
    pub index_dir: Option<PathBuf>,
    /// Memory the lock index may keep as its page cache, in MiB (default 32). A lookup that
    /// misses it reads from disk: at 1 M locked versions, lookups took p99 318 µs with the
    /// default and 17 µs with 1024 MiB (docs/BENCHMARKS.md). Env: `WORMGATE_INDEX_CACHE_MIB`.
    pub index_cache_mib: Option<u64>,
    /// Keep every committed lock record in memory too, loaded from the index at start-up
    /// (default false). Lookups then never wait on the page cache: at 10 M locked versions,
    /// p99 2.3 µs, at 2 665 MiB resident and 66 s to load before the listeners open
    /// (docs/BENCHMARKS.md). Env: `WORMGATE_INDEX_RECORDS_IN_MEMORY` (`true` or `false`).
    pub index_records_in_memory: Option<bool>,
    /// Longest retention anyone may set, in days (default and maximum 36500, as on AWS).
    pub max_retention_days: Option<u32>,
    /// `bucket-retention` buckets: when a wanted retain-until date outlives the backend's
    /// bucket period, raise that period (only ever up) if the new period is at most this many
    /// days. Unset: never extend; the gateway enforces the date and the audit reports the gap.
    pub auto_extend_up_to_days: Option<u32>,
    /// How far the backend's clock (its `Date` header) may be from the gateway's when a lock
    /// is treated as ended, in seconds (default 300, at most 3600). Beyond it, a request that
    /// a lock's end would let through is refused with 503.
    pub clock_tolerance_secs: Option<u32>,
}

/// `[server]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Address of the S3 listener, e.g. `127.0.0.1:9000`. Env: `WORMGATE_LISTEN`.
    pub listen: Option<SocketAddr>,
    /// Directory for the gateway's state (generated credentials, the embedded store).
    /// Env: `WORMGATE_DATA`.
    pub data_dir: Option<PathBuf>,
    /// Region the clients sign for. Informational: clients may sign for any region.
    pub region: Option<String>,
    /// Base domain for virtual-host-style requests: `bucket.<base_domain>` addresses `bucket`.
    /// Without it every request is path-style. Env: `WORMGATE_BASE_DOMAIN`.
    pub base_domain: Option<String>,
    /// PEM certificate chain; with `tls_key`, the listener speaks HTTPS only.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// After SIGTERM, how long uploads and downloads in flight may run on before the gateway
    /// stops anyway, in seconds (default 30). Env: `WORMGATE_SHUTDOWN_GRACE_SECS`.
    pub shutdown_grace_secs: Option<u64>,
    /// Threads that serve requests (default: half the CPUs, at least one). A sidecar shares its
    /// CPUs with the backup agent it serves; measured on two cores with the client beside it,
    /// one worker served 4 KiB HEADs 24 % and GETs 34 % faster than two (medians), and large
    /// transfers as fast.
    /// Env: `WORMGATE_WORKER_THREADS`.
    pub worker_threads: Option<usize>,
    /// How long a client may take to send a request's headers, in seconds (default 30): from
    /// the connection's start to its first request, and between requests on a kept-alive
    /// HTTP/1 connection. A client that holds a connection without finishing its headers is
    /// cut then. Env: `WORMGATE_HEADER_READ_TIMEOUT_SECS`.
    pub header_read_timeout_secs: Option<u64>,
    /// Connections the S3 listener serves at once (default 1024); more wait in the listen
    /// backlog until one ends. Env: `WORMGATE_MAX_CONNECTIONS`.
    pub max_connections: Option<usize>,
}

/// `[backend]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendSection {
    /// Endpoint of the store, e.g. `https://s3.eu-west-1.amazonaws.com` or `http://127.0.0.1:9100`.
    /// Requests go path-style to it. Env: `WORMGATE_BACKEND_URL`.
    pub url: Option<String>,
    /// Access key of the backend account; only the gateway holds it.
    /// Env: `WORMGATE_BACKEND_ACCESS_KEY`.
    pub access_key: Option<String>,
    /// Secret key of the backend account. Env: `WORMGATE_BACKEND_SECRET_KEY`.
    pub secret_key: Option<String>,
    /// A file holding the backend secret key (a mounted secret); used when `secret_key` is unset.
    pub secret_key_file: Option<PathBuf>,
    /// Region to sign backend requests for. Env: `WORMGATE_BACKEND_REGION`.
    pub region: Option<String>,
    /// Extra PEM CA certificates trusted for an https backend, beside the system roots.
    pub ca_file: Option<PathBuf>,
    /// Seconds to wait for a TCP/TLS connection to the backend (default 5).
    pub connect_timeout_secs: Option<u64>,
    /// Seconds to wait for the backend's response headers once the request is sent (default 300:
    /// completing a large multipart upload can take minutes on some stores).
    pub response_timeout_secs: Option<u64>,
}

/// `[[users]]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSection {
    /// Access key the client signs with.
    pub access_key: String,
    /// Secret key; or use `secret_key_file`.
    pub secret_key: Option<String>,
    /// A file holding the secret key.
    pub secret_key_file: Option<PathBuf>,
    /// Buckets this user may touch; `"*"` for all. Default: all.
    pub buckets: Option<Vec<String>>,
    /// What the user may do: `read`, `write`, `extend-retention`, `bypass-governance`,
    /// `legal-hold`, `admin`. Default: a backup agent's `read`, `write`, `extend-retention`.
    pub permissions: Option<Vec<String>>,
}

impl FileConfig {
    /// Reads and parses a config file.
    ///
    /// # Errors
    /// Unreadable file, invalid TOML or an unknown field.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }
}
