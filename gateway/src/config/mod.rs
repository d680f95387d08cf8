//! The one typed configuration: a TOML file, then environment variables on top (the sidecar way).
//!
//! Unknown fields are errors: a typo must never silently relax anything. Secrets may come from
//! the file, from a file of their own, or from the environment; they are never logged.

pub mod credentials;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use policy::lock::Profile;
use policy::permissions::{Permission, Permissions};
use serde::Deserialize;

/// Where the gateway listens when nothing else is said.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9000";
/// Where the gateway keeps its state when nothing else is said.
pub const DEFAULT_DATA_DIR: &str = "./wormgate-data";
/// The region clients and the backend sign for when nothing else is said.
pub const DEFAULT_REGION: &str = "us-east-1";
/// The admin listener's address when none is configured.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9001";

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

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Where values come from besides the file; a function so tests need not touch the process env.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
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

fn read_secret_file(path: &Path) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(Secret::new(text.trim_end_matches(['\r', '\n'])))
}

fn secret_from(
    inline: Option<String>,
    file: Option<&Path>,
    what: &str,
) -> Result<Option<Secret>, ConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(ConfigError::Invalid(format!(
            "{what}: set secret_key or secret_key_file, not both"
        ))),
        (Some(s), None) => Ok(Some(Secret::new(s))),
        (None, Some(path)) => read_secret_file(path).map(Some),
        (None, None) => Ok(None),
    }
}

impl Settings {
    /// Resolves the file and the environment into validated settings.
    ///
    /// # Errors
    /// Any value that does not make sense; the message names it.
    #[allow(clippy::too_many_lines)]
    pub fn resolve(file: FileConfig, env: &dyn Env) -> Result<Self, ConfigError> {
        let listen = match env.var("WORMGATE_LISTEN") {
            Some(v) => v
                .parse()
                .map_err(|e| ConfigError::Invalid(format!("WORMGATE_LISTEN={v}: {e}")))?,
            None => file.server.listen.unwrap_or_else(|| {
                DEFAULT_LISTEN
                    .parse()
                    .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 9000)))
            }),
        };
        let data_dir = env
            .var("WORMGATE_DATA")
            .map(PathBuf::from)
            .or(file.server.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let region = file
            .server
            .region
            .unwrap_or_else(|| DEFAULT_REGION.to_owned());
        let base_domain = env
            .var("WORMGATE_BASE_DOMAIN")
            .or(file.server.base_domain)
            .map(|d| d.trim_matches('.').to_ascii_lowercase());
        if base_domain.as_deref() == Some("") {
            return Err(ConfigError::Invalid("server.base_domain is empty".into()));
        }
        let tls = match (file.server.tls_cert, file.server.tls_key) {
            (Some(cert), Some(key)) => Some(TlsSettings { cert, key }),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid(
                    "server.tls_cert and server.tls_key go together".into(),
                ));
            }
        };

        let shutdown_grace_secs = number_from_env(env, "WORMGATE_SHUTDOWN_GRACE_SECS")?
            .or(file.server.shutdown_grace_secs)
            .unwrap_or(30);
        let worker_threads = number_from_env(env, "WORMGATE_WORKER_THREADS")?
            .or(file.server.worker_threads)
            .unwrap_or_else(default_worker_threads);
        if worker_threads == 0 {
            return Err(ConfigError::Invalid(
                "server.worker_threads must be at least 1".into(),
            ));
        }
        let header_read_timeout_secs = number_from_env(env, "WORMGATE_HEADER_READ_TIMEOUT_SECS")?
            .or(file.server.header_read_timeout_secs)
            .unwrap_or(30);
        let max_connections = number_from_env(env, "WORMGATE_MAX_CONNECTIONS")?
            .or(file.server.max_connections)
            .unwrap_or(1024);
        if header_read_timeout_secs == 0 || max_connections == 0 {
            return Err(ConfigError::Invalid(
                "server.header_read_timeout_secs and server.max_connections must be at least 1"
                    .into(),
            ));
        }
        let connect_timeout_secs = 5;
        let response_timeout_secs = 300;
        let section = file.backend.unwrap_or_default();
        let url = env.var("WORMGATE_BACKEND_URL").or(section.url);
        let backend = match url {
            None => BackendSettings::Embedded,
            Some(url) => {
                let uri: http::Uri = url
                    .parse()
                    .map_err(|e| ConfigError::Invalid(format!("backend url {url:?}: {e}")))?;
                match uri.scheme_str() {
                    Some("http" | "https") => {}
                    _ => {
                        return Err(ConfigError::Invalid(format!(
                            "backend url {url:?}: must start with http:// or https://"
                        )));
                    }
                }
                if uri.authority().is_none() {
                    return Err(ConfigError::Invalid(format!(
                        "backend url {url:?}: no host"
                    )));
                }
                if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
                    return Err(ConfigError::Invalid(format!(
                        "backend url {url:?}: give the endpoint only, without a path or query"
                    )));
                }
                let access_key = env
                    .var("WORMGATE_BACKEND_ACCESS_KEY")
                    .or(section.access_key)
                    .ok_or_else(|| {
                        ConfigError::Invalid(
                            "backend access key missing (backend.access_key or WORMGATE_BACKEND_ACCESS_KEY)".into(),
                        )
                    })?;
                let secret_key = match env.var("WORMGATE_BACKEND_SECRET_KEY") {
                    Some(s) => Secret::new(s),
                    None => secret_from(
                        section.secret_key,
                        section.secret_key_file.as_deref(),
                        "backend",
                    )?
                    .ok_or_else(|| {
                        ConfigError::Invalid(
                            "backend secret key missing (backend.secret_key, backend.secret_key_file or WORMGATE_BACKEND_SECRET_KEY)".into(),
                        )
                    })?,
                };
                let region = env
                    .var("WORMGATE_BACKEND_REGION")
                    .or(section.region)
                    .unwrap_or_else(|| DEFAULT_REGION.to_owned());
                BackendSettings::Remote(RemoteBackend {
                    url: uri,
                    access_key,
                    secret_key,
                    region,
                    ca_file: section.ca_file,
                    connect_timeout_secs: section
                        .connect_timeout_secs
                        .unwrap_or(connect_timeout_secs),
                    response_timeout_secs: section
                        .response_timeout_secs
                        .unwrap_or(response_timeout_secs),
                })
            }
        };

        let mut users = Vec::with_capacity(file.users.len() + 1);
        for u in file.users {
            let what = format!("user {}", u.access_key);
            let secret = secret_from(u.secret_key, u.secret_key_file.as_deref(), &what)?
                .ok_or_else(|| ConfigError::Invalid(format!("{what}: no secret key")))?;
            let permissions = match u.permissions {
                None => Permissions::BACKUP,
                Some(list) => list
                    .iter()
                    .map(|p| {
                        Permission::parse(p).ok_or_else(|| {
                            ConfigError::Invalid(format!(
                                "{what}: unknown permission {p:?} (read, write, extend-retention, bypass-governance, legal-hold, admin)"
                            ))
                        })
                    })
                    .collect::<Result<Permissions, _>>()?,
            };
            users.push(User {
                buckets: scope_from(u.buckets),
                access_key: u.access_key,
                secret_key: secret,
                permissions,
            });
        }
        match (
            env.var("WORMGATE_ACCESS_KEY"),
            env.var("WORMGATE_SECRET_KEY"),
        ) {
            (Some(ak), Some(sk)) => {
                // The environment's user replaces a configured user of the same key.
                users.retain(|u| u.access_key != ak);
                // An ordinary backup user: bypass and legal holds only for users a file names.
                users.push(User {
                    access_key: ak,
                    secret_key: Secret::new(sk),
                    buckets: BucketScope::All,
                    permissions: Permissions::BACKUP,
                });
            }
            (None, None) => {}
            _ => {
                return Err(ConfigError::Invalid(
                    "WORMGATE_ACCESS_KEY and WORMGATE_SECRET_KEY go together".into(),
                ));
            }
        }
        for (i, u) in users.iter().enumerate() {
            validate_key(&u.access_key, u.secret_key.expose())?;
            if users[..i].iter().any(|o| o.access_key == u.access_key) {
                return Err(ConfigError::Invalid(format!(
                    "user {} is configured twice",
                    u.access_key
                )));
            }
        }

        let oss = resolve_oss(file.oss, &backend, env)?;
        let locks = resolve_locks(file.locks, &data_dir, &backend, oss.is_some(), env)?;
        let admin = resolve_admin(file.admin, env)?;
        Ok(Self {
            locks,
            oss,
            admin,
            listen,
            data_dir,
            region,
            base_domain,
            tls,
            backend,
            users,
            connect_timeout_secs,
            response_timeout_secs,
            shutdown_grace_secs,
            worker_threads,
            header_read_timeout_secs,
            max_connections,
        })
    }
}

/// A number from the environment, if the variable is set.
fn number_from_env<T: std::str::FromStr>(
    env: &dyn Env,
    name: &str,
) -> Result<Option<T>, ConfigError> {
    env.var(name)
        .map(|v| {
            v.parse()
                .map_err(|_| ConfigError::Invalid(format!("{name} {v:?}: not a number")))
        })
        .transpose()
}

/// `true` or `false` from the environment, if the variable is set.
fn flag_from_env(env: &dyn Env, name: &str) -> Result<Option<bool>, ConfigError> {
    env.var(name)
        .map(|v| match v.as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(ConfigError::Invalid(format!(
                "{name} {v:?}: not true or false"
            ))),
        })
        .transpose()
}

/// Half the CPUs this process may use, at least one: the other half is left to the backup
/// agent beside it.
fn default_worker_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().div_ceil(2))
}

fn resolve_oss(
    section: Option<OssSection>,
    backend: &BackendSettings,
    env: &dyn Env,
) -> Result<Option<OssSettings>, ConfigError> {
    let endpoint = env
        .var("WORMGATE_OSS_ENDPOINT")
        .or_else(|| section.as_ref().and_then(|s| s.endpoint.clone()));
    let Some(endpoint) = endpoint else {
        if section.is_some() {
            return Err(ConfigError::Invalid("oss.endpoint is missing".into()));
        }
        return Ok(None);
    };
    let section = section.unwrap_or_default();
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|e| ConfigError::Invalid(format!("oss endpoint {endpoint:?}: {e}")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
        return Err(ConfigError::Invalid(format!(
            "oss endpoint {endpoint:?}: give http(s)://host[:port]"
        )));
    }
    let region = env
        .var("WORMGATE_OSS_REGION")
        .or(section.region)
        .ok_or_else(|| ConfigError::Invalid("oss.region is missing (e.g. cn-hangzhou)".into()))?;
    let BackendSettings::Remote(remote) = backend else {
        return Err(ConfigError::Invalid(
            "[oss] needs the OSS bucket's S3-compatible endpoint as the backend".into(),
        ));
    };
    let access_key = section
        .access_key
        .unwrap_or_else(|| remote.access_key.clone());
    let secret_key = secret_from(
        section.secret_key,
        section.secret_key_file.as_deref(),
        "oss",
    )?
    .unwrap_or_else(|| remote.secret_key.clone());
    Ok(Some(OssSettings {
        endpoint: uri,
        region,
        access_key,
        secret_key,
    }))
}

fn resolve_admin(section: AdminSection, env: &dyn Env) -> Result<AdminSettings, ConfigError> {
    let listen = match env.var("WORMGATE_ADMIN_LISTEN") {
        Some(v) => v
            .parse()
            .map_err(|e| ConfigError::Invalid(format!("WORMGATE_ADMIN_LISTEN={v}: {e}")))?,
        None => section.listen.unwrap_or_else(|| {
            DEFAULT_ADMIN_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 9001)))
        }),
    };
    let token = match env.var("WORMGATE_ADMIN_TOKEN") {
        Some(t) => Some(Secret::new(t)),
        None => secret_from(section.token, section.token_file.as_deref(), "admin")?,
    };
    if let Some(t) = &token
        && (t.expose().len() < 16 || !t.expose().bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(ConfigError::Invalid(
            "the admin token must be at least 16 printable ASCII characters".into(),
        ));
    }
    Ok(AdminSettings { listen, token })
}

fn resolve_locks(
    section: LocksSection,
    data_dir: &Path,
    backend: &BackendSettings,
    has_oss: bool,
    env: &dyn Env,
) -> Result<LockSettings, ConfigError> {
    let parse = |what: &str, v: &str| {
        Profile::parse(v).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "{what}: unknown profile {v:?} (gateway, native, bucket-retention)"
            ))
        })
    };
    let default_profile = match env.var("WORMGATE_PROFILE").or(section.profile) {
        Some(v) => parse("locks.profile", &v)?,
        None => Profile::Gateway,
    };
    let mut bucket_profiles = BTreeMap::new();
    for (bucket, v) in &section.buckets {
        bucket_profiles.insert(
            bucket.clone(),
            parse(&format!("locks.buckets.{bucket}"), v)?,
        );
    }
    let profiles = std::iter::once(default_profile).chain(bucket_profiles.values().copied());
    for p in profiles {
        if p == Profile::BucketRetention && !has_oss {
            return Err(ConfigError::Invalid(
                "the bucket-retention profile needs [oss] (endpoint and region of OSS's own API, for BucketWorm)"
                    .into(),
            ));
        }
        if p == Profile::Native && matches!(backend, BackendSettings::Embedded) {
            return Err(ConfigError::Invalid(
                "the embedded store has no object lock of its own: its buckets use the gateway profile"
                    .into(),
            ));
        }
    }
    let max_retention_days = section
        .max_retention_days
        .unwrap_or(policy::lock::Period::MAX_DAYS);
    if max_retention_days == 0 || max_retention_days > policy::lock::Period::MAX_DAYS {
        return Err(ConfigError::Invalid(format!(
            "locks.max_retention_days must be 1..={}",
            policy::lock::Period::MAX_DAYS
        )));
    }
    let index_dir = env
        .var("WORMGATE_INDEX_DIR")
        .map(PathBuf::from)
        .or(section.index_dir)
        .unwrap_or_else(|| data_dir.join("index"));
    let index_cache_mib = number_from_env(env, "WORMGATE_INDEX_CACHE_MIB")?
        .or(section.index_cache_mib)
        .unwrap_or(policy::index::DEFAULT_CACHE_BYTES >> 20);
    if !(1..=1 << 20).contains(&index_cache_mib) {
        return Err(ConfigError::Invalid(
            "locks.index_cache_mib must be 1..=1048576".into(),
        ));
    }
    if let Some(days) = section.auto_extend_up_to_days
        && !(1..=OSS_MAX_PERIOD_DAYS).contains(&days)
    {
        return Err(ConfigError::Invalid(format!(
            "locks.auto_extend_up_to_days must be 1..={}",
            OSS_MAX_PERIOD_DAYS
        )));
    }
    let clock_tolerance_secs = section
        .clock_tolerance_secs
        .unwrap_or(DEFAULT_CLOCK_TOLERANCE_SECS);
    if !(1..=3600).contains(&clock_tolerance_secs) {
        return Err(ConfigError::Invalid(
            "locks.clock_tolerance_secs must be 1..=3600".into(),
        ));
    }
    Ok(LockSettings {
        default_profile,
        bucket_profiles,
        index_dir,
        index_cache_bytes: index_cache_mib << 20,
        index_records_in_memory: flag_from_env(env, "WORMGATE_INDEX_RECORDS_IN_MEMORY")?
            .or(section.index_records_in_memory)
            .unwrap_or(false),
        max_retention_days,
        auto_extend_up_to_days: section.auto_extend_up_to_days,
        clock_tolerance_secs,
    })
}

fn scope_from(buckets: Option<Vec<String>>) -> BucketScope {
    match buckets {
        None => BucketScope::All,
        Some(list) if list.iter().any(|b| b == "*") => BucketScope::All,
        Some(list) => BucketScope::Only(list),
    }
}

fn validate_key(access_key: &str, secret_key: &str) -> Result<(), ConfigError> {
    let printable = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
    if !printable(access_key) || access_key.contains(['/', '=', ',']) {
        return Err(ConfigError::Invalid(format!(
            "access key {access_key:?}: use printable ASCII without '/', '=' or ','"
        )));
    }
    if !printable(secret_key) {
        return Err(ConfigError::Invalid(format!(
            "user {access_key}: the secret key must be printable ASCII"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct MapEnv(HashMap<&'static str, &'static str>);
    impl Env for MapEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|s| (*s).to_owned())
        }
    }

    fn env(pairs: &[(&'static str, &'static str)]) -> MapEnv {
        MapEnv(pairs.iter().copied().collect())
    }

    #[test]
    fn defaults_are_the_embedded_store_on_loopback() {
        let s = Settings::resolve(FileConfig::default(), &env(&[])).expect("resolves");
        assert_eq!(s.listen.to_string(), "127.0.0.1:9000");
        assert!(matches!(s.backend, BackendSettings::Embedded));
        assert!(s.users.is_empty());
    }

    #[test]
    fn worker_threads_default_to_at_least_one_and_refuse_zero() {
        let s = Settings::resolve(FileConfig::default(), &env(&[])).expect("resolves");
        assert!(s.worker_threads >= 1);
        let file: FileConfig = toml::from_str("[server]\nworker_threads = 3\n").expect("parses");
        let s = Settings::resolve(file, &env(&[])).expect("resolves");
        assert_eq!(s.worker_threads, 3);
        let err = Settings::resolve(
            FileConfig::default(),
            &env(&[("WORMGATE_WORKER_THREADS", "0")]),
        )
        .expect_err("zero threads serve nothing");
        assert!(err.to_string().contains("worker_threads"), "{err}");
    }

    #[test]
    fn records_in_memory_are_off_unless_asked_for() {
        let s = Settings::resolve(FileConfig::default(), &env(&[])).expect("resolves");
        assert!(!s.locks.index_records_in_memory);
        let file: FileConfig =
            toml::from_str("[locks]\nindex_records_in_memory = true\n").expect("parses");
        let s = Settings::resolve(file, &env(&[])).expect("resolves");
        assert!(s.locks.index_records_in_memory);
        let off = env(&[("WORMGATE_INDEX_RECORDS_IN_MEMORY", "false")]);
        let file: FileConfig =
            toml::from_str("[locks]\nindex_records_in_memory = true\n").expect("parses");
        assert!(
            !Settings::resolve(file, &off)
                .expect("resolves")
                .locks
                .index_records_in_memory
        );
        let err = Settings::resolve(
            FileConfig::default(),
            &env(&[("WORMGATE_INDEX_RECORDS_IN_MEMORY", "yes")]),
        )
        .expect_err("only true or false");
        assert!(err.to_string().contains("not true or false"), "{err}");
    }

    #[test]
    fn unknown_field_is_an_error() {
        let err = toml::from_str::<FileConfig>(
            "[server]\nlisten = \"127.0.0.1:1\"\nretention_off = true\n",
        )
        .expect_err("must fail");
        assert!(err.to_string().contains("retention_off"), "{err}");
    }

    #[test]
    fn environment_overrides_the_file() {
        let file: FileConfig = toml::from_str(
            r#"
            [server]
            listen = "127.0.0.1:1"
            [backend]
            url = "http://127.0.0.1:2"
            access_key = "file-ak"
            secret_key = "file-sk"
            [[users]]
            access_key = "agent"
            secret_key = "agent-secret"
            buckets = ["backups"]
            "#,
        )
        .expect("parses");
        let s = Settings::resolve(
            file,
            &env(&[
                ("WORMGATE_LISTEN", "127.0.0.1:3"),
                ("WORMGATE_BACKEND_URL", "https://example.invalid"),
                ("WORMGATE_BACKEND_SECRET_KEY", "env-sk"),
                ("WORMGATE_ACCESS_KEY", "envuser"),
                ("WORMGATE_SECRET_KEY", "envsecret"),
            ]),
        )
        .expect("resolves");
        assert_eq!(s.listen.port(), 3);
        let BackendSettings::Remote(b) = &s.backend else {
            panic!("remote expected")
        };
        assert_eq!(b.url.to_string(), "https://example.invalid/");
        assert_eq!(b.access_key, "file-ak");
        assert_eq!(b.secret_key.expose(), "env-sk");
        assert_eq!(s.users.len(), 2);
        assert!(!s.users[0].buckets.allows("other"));
        assert!(s.users[1].buckets.allows("other"));
    }

    #[test]
    fn backend_without_secret_is_refused() {
        let err = Settings::resolve(
            FileConfig::default(),
            &env(&[
                ("WORMGATE_BACKEND_URL", "http://127.0.0.1:2"),
                ("WORMGATE_BACKEND_ACCESS_KEY", "ak"),
            ]),
        )
        .expect_err("must fail");
        assert!(err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "<redacted>");
    }
}

#[cfg(test)]
mod shipped_configs {
    use super::*;

    /// Every example in configs/ parses; the local one resolves as written.
    #[test]
    fn shipped_configs_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("configs dir") {
            let path = entry.expect("entry").path();
            if path.extension().and_then(|e| e.to_str()) == Some("toml") {
                FileConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
                seen += 1;
            }
        }
        assert!(
            seen >= 2,
            "expected the shipped configs in {}",
            dir.display()
        );
        let local = FileConfig::load(&dir.join("local.toml")).expect("local.toml");
        let s = Settings::resolve(local, &ProcessEnvless).expect("resolves");
        assert_eq!(s.users.len(), 2);
        assert!(matches!(s.backend, BackendSettings::Embedded));
    }

    struct ProcessEnvless;
    impl Env for ProcessEnvless {
        fn var(&self, _: &str) -> Option<String> {
            None
        }
    }
}
