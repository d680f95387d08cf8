//! The backend client: re-signs each request with the backend's keys and streams it there.
//!
//! The body is never read here: it is handed to hyper as a stream with its exact
//! `Content-Length`, signed as `UNSIGNED-PAYLOAD`. Only the gateway holds the backend's keys.

pub mod door;
pub mod oss;
mod sigv4;
pub mod trailer;

use policy::rules::{Decision, DenyReason};
use std::error::Error as StdError;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::backend::sigv4::{SignError, Signer};
use crate::config::RemoteBackend;
use crate::error::GatewayError;

/// A request or response body on its way through the gateway.
pub type ProxyBody = UnsyncBoxBody<Bytes, Box<dyn StdError + Send + Sync>>;

/// How the body sent to the backend is framed, for its signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// A plain body of exactly `Content-Length` bytes.
    Unsigned,
    /// aws-chunked with a trailing checksum (see `trailer`).
    UnsignedWithTrailer,
}

/// Connection-pooled, signing client for one backend endpoint.
#[derive(Clone)]
pub struct Backend {
    inner: Arc<Inner>,
}

struct Inner {
    client: HttpClient,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    host: HeaderValue,
    signer: Signer,
    response_timeout: Duration,
    /// Keys the tags of names the gateway gives out and must recognise when they come back
    /// (multipart upload ids), derived from the backend's secret: every gateway with the same
    /// backend keys recognises them, nobody without them can make one.
    names_key: [u8; 32],
}

#[derive(Debug, thiserror::Error)]
pub enum BackendSetupError {
    #[error("cannot read the CA file {path}: {source}")]
    CaFile {
        path: String,
        source: std::io::Error,
    },
    #[error("the CA file {0} holds no usable certificate")]
    NoCertificates(String),
    #[error("backend url has no host")]
    NoHost,
    #[error("backend host is not a valid header value")]
    BadHost,
    #[error("TLS client setup: {0}")]
    Tls(String),
}

fn root_store(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, BackendSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for err in &native.errors {
        tracing::warn!(error = %err, "a system CA certificate could not be loaded");
    }
    let _ = roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let shown = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|source| BackendSetupError::CaFile {
            path: shown.clone(),
            source,
        })?;
        let certs: Vec<_> = rustls_pemfile::certs(&mut std::io::BufReader::new(file))
            .collect::<Result<_, _>>()
            .map_err(|source| BackendSetupError::CaFile {
                path: shown.clone(),
                source,
            })?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(BackendSetupError::NoCertificates(shown));
        }
    }
    Ok(roots)
}

/// The pooled HTTP(S) client every backend call goes through: system roots plus `ca_file`,
/// HTTP/1.1, keep-alive.
pub(crate) type HttpClient = Client<HttpsConnector<HttpConnector>, ProxyBody>;

pub(crate) fn http_client(
    ca_file: Option<&Path>,
    connect_timeout_secs: u64,
) -> Result<HttpClient, BackendSetupError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(connect_timeout_secs)));
    http.set_keepalive(Some(Duration::from_secs(60)));

    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| BackendSetupError::Tls(e.to_string()))?
    .with_root_certificates(root_store(ca_file)?)
    .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(50))
        .build(connector))
}

impl Backend {
    /// Builds the client. Nothing is connected yet.
    ///
    /// # Errors
    /// A CA file that cannot be read, or a URL without a host.
    pub fn new(remote: &RemoteBackend) -> Result<Self, BackendSetupError> {
        let authority = remote
            .url
            .authority()
            .cloned()
            .ok_or(BackendSetupError::NoHost)?;
        let scheme = remote
            .url
            .scheme()
            .cloned()
            .unwrap_or(http::uri::Scheme::HTTP);
        let host =
            HeaderValue::from_str(authority.as_str()).map_err(|_| BackendSetupError::BadHost)?;

        let client = http_client(remote.ca_file.as_deref(), remote.connect_timeout_secs)?;

        let signer = Signer::new(
            &remote.access_key,
            remote.secret_key.expose(),
            &remote.region,
        );
        let names_key = {
            use hmac::{Hmac, KeyInit, Mac as _};
            let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(
                remote.secret_key.expose().as_bytes(),
            )
            .expect("HMAC takes a key of any length");
            mac.update(b"wormgate: tags of the names the gateway gives out");
            mac.finalize().into_bytes().into()
        };

        Ok(Self {
            inner: Arc::new(Inner {
                client,
                scheme,
                authority,
                host,
                signer,
                response_timeout: Duration::from_secs(remote.response_timeout_secs),
                names_key,
            }),
        })
    }

    /// The tag of a name the gateway gives out (16 bytes of HMAC-SHA256 over `parts`).
    #[must_use]
    pub fn name_tag(&self, parts: &[&str]) -> [u8; 16] {
        use hmac::Mac as _;
        let mut out = [0u8; 16];
        out.copy_from_slice(&self.name_mac(parts).finalize().into_bytes()[..16]);
        out
    }

    /// Whether `tag` is the tag of `parts` (compared in constant time).
    #[must_use]
    pub fn name_tag_matches(&self, parts: &[&str], tag: &[u8]) -> bool {
        use hmac::Mac as _;
        tag.len() == 16 && self.name_mac(parts).verify_truncated_left(tag).is_ok()
    }

    fn name_mac(&self, parts: &[&str]) -> hmac::Hmac<sha2::Sha256> {
        use hmac::{KeyInit, Mac as _};
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&self.inner.names_key)
            .expect("HMAC takes a key of any length");
        for part in parts {
            // Each part with its length: no two lists of parts read the same.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac
    }

    /// Sends one request the policy allowed, with its body, streaming.
    ///
    /// `path_and_query` must already be in canonical S3 encoding (see `s3::target`). `headers`
    /// holds only end-to-end headers meant for the backend; `Host` and the signature are set
    /// here.
    ///
    /// # Errors
    /// `BackendUnavailable` when the backend cannot be reached or does not answer in time;
    /// `InvalidArgument` for a header the signature cannot carry.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        headers: HeaderMap,
        body: ProxyBody,
        payload: Payload,
        _permit: Permit,
    ) -> Result<Response<Incoming>, GatewayError> {
        self.dispatch(method, path_and_query, headers, body, payload)
            .await
    }

    /// Sends one read: a GET or a HEAD, with no body. The method's type holds no other.
    ///
    /// # Errors
    /// As [`Backend::send`].
    pub async fn read(
        &self,
        method: ReadMethod,
        path_and_query: &str,
        headers: HeaderMap,
        _permit: ReadPermit,
    ) -> Result<Response<Incoming>, GatewayError> {
        use http_body_util::BodyExt as _;
        let body = http_body_util::Empty::<Bytes>::new()
            .map_err(|e| -> Box<dyn StdError + Send + Sync> { match e {} })
            .boxed_unsync();
        self.dispatch(
            method.into(),
            path_and_query,
            headers,
            body,
            Payload::Unsigned,
        )
        .await
    }

    /// Signs and sends one request; returns the backend's response with its body still
    /// streaming. Private: every way in goes through `send` or `read`.
    async fn dispatch(
        &self,
        method: Method,
        path_and_query: &str,
        mut headers: HeaderMap,
        body: ProxyBody,
        payload: Payload,
    ) -> Result<Response<Incoming>, GatewayError> {
        let inner = &*self.inner;
        let uri = Uri::builder()
            .scheme(inner.scheme.clone())
            .authority(inner.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|e| GatewayError::InvalidUri(format!("cannot build the backend URI: {e}")))?;
        headers.insert(HOST, inner.host.clone());
        let payload_hash = match payload {
            Payload::Unsigned => "UNSIGNED-PAYLOAD",
            Payload::UnsignedWithTrailer => "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        };
        inner
            .signer
            .sign(&method, &uri, &mut headers, payload_hash, SystemTime::now())
            .map_err(|e| match e {
                SignError::NotAscii(_) => GatewayError::InvalidArgument(e.to_string()),
                SignError::KeyLength(_) => GatewayError::Internal(format!("signing failed: {e}")),
            })?;

        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .body(body)
            .map_err(|e| {
                GatewayError::Internal(format!("cannot build the backend request: {e}"))
            })?;
        *request.headers_mut() = headers;

        let fut = inner.client.request(request);
        match tokio::time::timeout(inner.response_timeout, fut).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(GatewayError::BackendUnavailable(error_chain(&e))),
            Err(_) => Err(GatewayError::BackendUnavailable(format!(
                "no response within {} s",
                inner.response_timeout.as_secs()
            ))),
        }
    }
}

/// Leave to send one request that changes the backend. Only an `Allow` of the policy gives
/// one ([`Permit::granted`]), and only `policy::rules::decide` can make an `Allow`: a
/// mutating path that skips the policy does not compile. Nor can one be written by hand:
///
/// ```compile_fail
/// let forged = wormgate::backend::Permit { _sealed: () };
/// ```
pub struct Permit {
    _sealed: (),
}

impl Permit {
    /// From the policy's answer.
    ///
    /// # Errors
    /// The denial's reason.
    pub fn granted(decision: Decision) -> Result<Self, DenyReason> {
        match decision {
            Decision::Allow(_) => Ok(Self { _sealed: () }),
            Decision::Deny { reason } => Err(reason),
        }
    }
}

/// Leave to read: it opens [`Backend::read`] only, whose method is a [`ReadMethod`]. A DELETE
/// (or any method but GET and HEAD) with a read permit does not compile:
///
/// ```compile_fail
/// async fn delete_with_a_read_permit(backend: &wormgate::backend::Backend) {
///     let permit = wormgate::backend::ReadPermit::new();
///     let _ = backend
///         .read(http::Method::DELETE, "/b/k", http::HeaderMap::new(), permit)
///         .await;
/// }
/// ```
///
/// while a HEAD does:
///
/// ```
/// async fn head(backend: &wormgate::backend::Backend) {
///     use wormgate::backend::{ReadMethod, ReadPermit};
///     let permit = ReadPermit::new();
///     let _ = backend
///         .read(ReadMethod::Head, "/b/k", http::HeaderMap::new(), permit)
///         .await;
/// }
/// ```
pub struct ReadPermit {
    _sealed: (),
}

impl ReadPermit {
    /// Reads change nothing: anyone may read (the user's read permission is checked before).
    #[must_use]
    pub fn new() -> Self {
        Self { _sealed: () }
    }
}

impl Default for ReadPermit {
    fn default() -> Self {
        Self::new()
    }
}

/// The methods a read may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMethod {
    Get,
    Head,
}

impl ReadMethod {
    /// GET or HEAD; `None` for any other method.
    #[must_use]
    pub fn of(method: &Method) -> Option<Self> {
        match *method {
            Method::GET => Some(Self::Get),
            Method::HEAD => Some(Self::Head),
            _ => None,
        }
    }
}

impl From<ReadMethod> for Method {
    fn from(m: ReadMethod) -> Self {
        match m {
            ReadMethod::Get => Self::GET,
            ReadMethod::Head => Self::HEAD,
        }
    }
}

/// The whole cause chain of an error, for the log.
pub fn error_chain(e: &dyn StdError) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
