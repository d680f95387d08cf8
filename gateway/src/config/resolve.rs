//! Resolution and validation: the file, then the environment on top, checked before anything
//! starts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use policy::lock::Profile;
use policy::permissions::{Permission, Permissions};

#[allow(clippy::wildcard_imports)]
use super::*;

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
