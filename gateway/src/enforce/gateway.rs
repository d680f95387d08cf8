//! The gateway's shared state (backend, users, locks, telemetry), the per-request value every
//! handler receives (`Call`), and the one way a handler sends a request to the backend
//! (`forward`, `send`: each takes a `Permit`).

use std::collections::HashMap;

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Method, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use s3s::Body;

use crate::backend::trailer;
use crate::backend::{Backend, Payload, ProxyBody};
use crate::backend::{Permit, ReadMethod, ReadPermit};
use crate::config::User;
use crate::enforce::Locks;
use crate::error::GatewayError;
use crate::s3::op::S3Op;
use crate::s3::target::{Query, Target};

/// Everything the request path needs, shared by all connections.
pub struct Gateway {
    pub(crate) backend: Backend,
    users: HashMap<String, User>,
    base_domain: Option<String>,
    pub(crate) locks: Locks,
    pub(crate) telemetry: crate::enforce::telemetry::Telemetry,
}

/// One authenticated, classified request on its way through the gateway: what it acts on is
/// resolved once, by the front, and every handler reads it from here.
pub(crate) struct Call<'a> {
    pub user: &'a User,
    pub op: S3Op,
    pub method: Method,
    pub target: Target,
    /// `versionId`, when the request names a version.
    pub version_id: Option<String>,
    /// `uploadId`, when the request belongs to a multipart upload.
    pub upload_id: Option<String>,
    pub query: Query,
    /// The client's headers, as s3s verified them.
    pub headers: HeaderMap,
    /// The decoded body stream; taken when forwarded (or read, for a small policy body).
    pub body: Option<Body>,
    pub trailers: Option<s3s::TrailingHeaders>,
}

impl Call<'_> {
    /// The bucket of an object or bucket request.
    pub fn bucket(&self) -> Result<&str, GatewayError> {
        self.target
            .bucket
            .as_deref()
            .ok_or_else(|| GatewayError::InvalidRequest("this request needs a bucket".into()))
    }

    /// The key of an object request.
    pub fn key(&self) -> Result<&str, GatewayError> {
        self.target
            .key
            .as_deref()
            .ok_or_else(|| GatewayError::InvalidRequest("this request needs a key".into()))
    }

    /// The object (and version) an object request acts on.
    pub fn object(&self) -> Result<policy::lock::ObjectRef, GatewayError> {
        Ok(policy::lock::ObjectRef::new(
            self.bucket()?,
            self.key()?,
            self.version_id.as_deref(),
        ))
    }

    /// Takes the body to read it; it must be replaced (`set_body`) before forwarding.
    pub fn take_body(&mut self) -> Body {
        self.body.take().unwrap_or_else(Body::empty)
    }

    /// Replaces the body with bytes the gateway wrote (a policy body rendered from what was
    /// decided), with their length and their own Content-MD5: the client's checksums were of
    /// the client's bytes.
    pub fn set_body(&mut self, bytes: Bytes, headers: &mut HeaderMap) {
        let stale: Vec<HeaderName> = headers
            .keys()
            .filter(|k| {
                let n = k.as_str();
                n == "content-md5"
                    || n.starts_with("x-amz-checksum-")
                    || n == "x-amz-sdk-checksum-algorithm"
            })
            .cloned()
            .collect();
        for name in stale {
            headers.remove(name);
        }
        headers.insert("content-md5", content_md5(&bytes));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        self.body = Some(Body::from(bytes));
        self.trailers = None;
    }
}

impl Gateway {
    /// Leaves the state on disk whole, at shutdown: the clock's high-water mark and the index.
    /// Every lock is already durable when its write is acknowledged; this flushes the rest.
    pub fn close(&self) {
        if let Err(e) = self.locks.time.persist() {
            tracing::warn!(error = %e, "cannot persist the clock's high-water mark");
        }
        match self.locks.index.flush() {
            Ok(()) => tracing::info!("lock index flushed"),
            Err(e) => tracing::error!(error = %e, "cannot flush the lock index"),
        }
    }

    #[must_use]
    pub fn new(
        backend: Backend,
        users: &[User],
        base_domain: Option<String>,
        locks: Locks,
    ) -> Self {
        Self {
            backend,
            users: users
                .iter()
                .map(|u| (u.access_key.clone(), u.clone()))
                .collect(),
            base_domain,
            locks,
            telemetry: crate::enforce::telemetry::Telemetry::new(),
        }
    }

    /// The secret key of a user, for s3s's signature check.
    #[must_use]
    pub fn secret_of(&self, access_key: &str) -> Option<&str> {
        self.users.get(access_key).map(|u| u.secret_key.expose())
    }

    /// The configured base domain for virtual-host-style requests.
    pub(crate) fn base_domain(&self) -> Option<&str> {
        self.base_domain.as_deref()
    }

    /// The user of an access key.
    pub(crate) fn user(&self, access_key: &str) -> Option<&User> {
        self.users.get(access_key)
    }

    /// Sends the call to the backend with `headers` (the client's, as prepared by the caller)
    /// and the call's body, streaming.
    pub(crate) async fn forward(
        &self,
        call: &mut Call<'_>,
        mut headers: HeaderMap,
        permit: Permit,
    ) -> Result<Response<Incoming>, GatewayError> {
        let body = call.body.take().unwrap_or_else(Body::empty);
        let (body, payload) = match call.trailers.take() {
            Some(trailers) if call.headers.contains_key("x-amz-trailer") => {
                let body = trailer::forward(body, &call.headers, trailers, &mut headers)?;
                (body, Payload::UnsignedWithTrailer)
            }
            _ => {
                let body: ProxyBody = body
                    .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { e })
                    .boxed_unsync();
                (body, Payload::Unsigned)
            }
        };
        let query = call.query.to_backend_string();
        self.send(
            call.method.clone(),
            &call.target,
            query.as_deref(),
            headers,
            body,
            payload,
            permit,
        )
        .await
    }

    /// Sends a read call (GET or HEAD) to the backend with `headers`.
    ///
    /// # Errors
    /// Any other method: an unknown operation, refused (a read has nothing to decide, so
    /// nothing but a read may come this way).
    pub(crate) async fn forward_read(
        &self,
        call: &mut Call<'_>,
        headers: HeaderMap,
    ) -> Result<Response<Incoming>, GatewayError> {
        let method = ReadMethod::of(&call.method).ok_or_else(|| {
            GatewayError::UnknownOperation(format!("{} {}", call.method, call.op.name()))
        })?;
        let query = call.query.to_backend_string();
        self.read(method, &call.target, query.as_deref(), headers)
            .await
    }

    /// Sends one request the policy allowed. Only a `Permit` opens this door.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn send(
        &self,
        method: Method,
        target: &Target,
        query: Option<&str>,
        headers: HeaderMap,
        body: ProxyBody,
        payload: Payload,
        permit: Permit,
    ) -> Result<Response<Incoming>, GatewayError> {
        let path = path_and_query(target, query);
        let started = std::time::Instant::now();
        let resp = self
            .backend
            .send(method, &path, headers, body, payload, permit)
            .await;
        self.observe(started, resp)
    }

    /// Sends one request without a body or headers of its own (a delete, a delete marker, a
    /// journal record, a bucket's lifecycle rules removed) the policy allowed.
    pub(crate) async fn send_empty(
        &self,
        method: Method,
        target: &Target,
        query: Option<&str>,
        permit: Permit,
    ) -> Result<Response<Incoming>, GatewayError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        let body = crate::enforce::empty_body();
        self.send(
            method,
            target,
            query,
            headers,
            body,
            Payload::Unsigned,
            permit,
        )
        .await
    }

    /// Sends one read (the gateway's own, for facts, or a client's).
    pub(crate) async fn read(
        &self,
        method: ReadMethod,
        target: &Target,
        query: Option<&str>,
        headers: HeaderMap,
    ) -> Result<Response<Incoming>, GatewayError> {
        let path = path_and_query(target, query);
        let started = std::time::Instant::now();
        let resp = self
            .backend
            .read(method, &path, headers, ReadPermit::new())
            .await;
        self.observe(started, resp)
    }

    /// The backend's latency, and its clock's `Date`, from every reply.
    fn observe(
        &self,
        started: std::time::Instant,
        resp: Result<Response<Incoming>, GatewayError>,
    ) -> Result<Response<Incoming>, GatewayError> {
        self.telemetry.backend_latency(started.elapsed());
        if let Ok(r) = &resp {
            self.locks
                .time
                .observe_backend_date(r.headers().get(http::header::DATE));
        }
        resp
    }
}

/// The `Content-MD5` of a body the gateway wrote.
pub(crate) fn content_md5(bytes: &[u8]) -> HeaderValue {
    use base64::Engine as _;
    use md5::{Digest, Md5};
    let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(bytes));
    HeaderValue::from_str(&md5).expect("base64 is a valid header value")
}

/// The backend's path and query of a request.
fn path_and_query(target: &Target, query: Option<&str>) -> String {
    let mut out = target.backend_path();
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}
