//! The embedded local store: s3s-fs in the gateway's own process, on an internal loopback port,
//! with keys that exist only in memory. It is the backend of `wormgate serve` with no config,
//! and the test suites' plain backend. It has no versioning and no object lock of its own.

use std::path::Path;

use http::Uri;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::config::Secret;

/// A running s3s-fs store; stops when dropped.
pub struct Embedded {
    pub endpoint: Uri,
    pub access_key: String,
    pub secret_key: Secret,
    _stop: oneshot::Sender<()>,
}

impl Embedded {
    /// Starts s3s-fs over `root` (created if missing) on `127.0.0.1` and a free port.
    ///
    /// # Errors
    /// The directory cannot be created or the port cannot be bound.
    pub async fn start(root: &Path) -> std::io::Result<Self> {
        Self::start_on(root, TcpListener::bind("127.0.0.1:0").await?)
    }

    /// Starts s3s-fs over `root` on an already bound listener.
    ///
    /// # Errors
    /// The directory cannot be created or used.
    pub fn start_on(root: &Path, listener: TcpListener) -> std::io::Result<Self> {
        let (access_key, secret_key) = crate::credentials::generate()?;
        Self::start_with_keys(root, listener, access_key, secret_key)
    }

    /// Starts s3s-fs over `root` on a bound listener with the given keys (a restart).
    ///
    /// # Errors
    /// The directory cannot be created or used.
    pub fn start_with_keys(
        root: &Path,
        listener: TcpListener,
        access_key: String,
        secret_key: Secret,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        let fs =
            s3s_fs::FileSystem::new(root).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(
            access_key.clone(),
            secret_key.expose().to_owned(),
        ));
        let service = builder.build();
        let addr = listener.local_addr()?;
        let endpoint: Uri = format!("http://{addr}")
            .parse()
            .map_err(|e| std::io::Error::other(format!("{e}")))?;
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = crate::server::serve(listener, None, service, shutdown).await {
                tracing::error!(error = %e, "embedded store stopped");
            }
        });
        Ok(Self {
            endpoint,
            access_key,
            secret_key,
            _stop: stop,
        })
    }
}
