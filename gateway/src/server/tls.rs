//! The S3 listener's certificate, read from its files at start and again on demand (SIGHUP),
//! without a restart. A handshake takes whichever certificate is current when it starts;
//! connections already open keep theirs, so a renewal drops nothing. A reload that cannot read
//! a certificate and its matching key changes nothing: the current one stays.

use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsSettings;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

/// The current certificate and where it comes from.
pub struct ReloadableCert {
    settings: TlsSettings,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for ReloadableCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadableCert")
            .field("cert", &self.settings.cert)
            .field("key", &self.settings.key)
            .finish_non_exhaustive()
    }
}

impl ReloadableCert {
    /// Reads the certificate chain and the key named in `settings`.
    ///
    /// # Errors
    /// A file cannot be read, holds no certificate or key, or the key does not match.
    pub fn load(settings: &TlsSettings) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = read_certified_key(settings, &provider)?;
        Ok(Self {
            settings: settings.clone(),
            provider,
            current: RwLock::new(Arc::new(key)),
        })
    }

    /// Reads the files again; the new certificate serves every handshake from now on. On an
    /// error the current certificate stays.
    ///
    /// # Errors
    /// As for [`ReloadableCert::load`].
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = Arc::new(read_certified_key(&self.settings, &self.provider)?);
        match self.current.write() {
            Ok(mut current) => *current = key,
            Err(poisoned) => *poisoned.into_inner() = key,
        }
        Ok(())
    }

    /// The acceptor for the listener, resolving to the current certificate.
    ///
    /// # Errors
    /// The provider does not support the protocol versions (never with ring).
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, TlsError> {
        let resolver: Arc<dyn ResolvesServerCert> = Arc::clone(self) as _;
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    fn current(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(current) => Arc::clone(&current),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn read_certified_key(
    settings: &TlsSettings,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut open(&settings.cert)?)
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(&settings.cert, &e))?;
    if certs.is_empty() {
        return Err(file_error(&settings.cert, &"no certificate"));
    }
    let key = rustls_pemfile::private_key(&mut open(&settings.key)?)
        .map_err(|e| file_error(&settings.key, &e))?
        .ok_or_else(|| file_error(&settings.key, &"no private key"))?;
    CertifiedKey::from_der(certs, key, provider).map_err(|e| {
        file_error(
            &settings.key,
            &format!("does not go with {}: {e}", settings.cert.display()),
        )
    })
}

fn open(path: &Path) -> Result<std::io::BufReader<std::fs::File>, TlsError> {
    std::fs::File::open(path)
        .map(std::io::BufReader::new)
        .map_err(|e| file_error(path, &e))
}

fn file_error(path: &Path, reason: &dyn std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}
