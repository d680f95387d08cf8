//! The request path: every authenticated request is classified, authorised, decided (see
//! `enforce`) and forwarded raw.
//!
//! s3s has already verified the signature (header, presigned or aws-chunked) and decodes the
//! body as a stream; this module never reads a body. What must never happen here: a request
//! that is not recognised and is not a read reaching the backend, or any request reaching it
//! without a `Permit`.

pub mod admission;
pub mod op;
pub mod target;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::http::Extensions;
use policy::permissions::Permission;
use s3s::route::S3Route;
use s3s::{Body, S3Error, S3Request, S3Response, S3Result};

use crate::backend::trailer;
use crate::backend::{Backend, Payload, ProxyBody};
use crate::config::User;
use crate::enforce::{Locks, Permit};
use crate::error::GatewayError;
use crate::front::op::S3Op;
use crate::front::target::{Query, Target};
use crate::s3::lock_headers;

/// The id of one request, put in the request's extensions by the server and echoed in
/// `x-amz-request-id` and in every error body.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Everything the request path needs, shared by all connections.
pub struct Gateway {
    pub(crate) backend: Backend,
    users: HashMap<String, User>,
    base_domain: Option<String>,
    pub(crate) locks: Locks,
    pub(crate) telemetry: crate::ops::telemetry::Telemetry,
}

/// Request headers that belong to the client's hop or to its signature, never to the backend.
const DROPPED_REQUEST_HEADERS: &[&str] = &[
    "authorization",
    "x-amz-date",
    "x-amz-content-sha256",
    "x-amz-security-token",
    "x-amz-decoded-content-length",
    "x-amz-trailer",
    "host",
    "connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
];

/// Request headers the decision reads. They never pass through as the client wrote them:
/// a handler sets them again from what was decided (`lock_headers::set_requested`,
/// `lock_headers::set_bypass`), so that a backend never acts on a date, mode or bypass the
/// gateway read differently or did not allow.
const DECIDED_REQUEST_HEADERS: &[&str] = &[
    lock_headers::MODE,
    lock_headers::RETAIN_UNTIL,
    lock_headers::LEGAL_HOLD,
    lock_headers::BYPASS,
    lock_headers::BUCKET_LOCK_ENABLED,
];

/// Response headers that belong to the backend's hop. `Date` is the gateway's own (hyper sets
/// it): clients that correct their clock skew from it must align with the clock that checks
/// their signatures, which is the gateway's.
const DROPPED_RESPONSE_HEADERS: &[&str] = &[
    "connection",
    "date",
    "keep-alive",
    "proxy-authenticate",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// One authenticated, classified request on its way through the gateway.
pub(crate) struct Call<'a> {
    pub user: &'a User,
    pub op: S3Op,
    pub method: Method,
    pub target: Target,
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

    /// Takes the body to read it; it must be replaced (`set_body`) before forwarding.
    pub fn take_body(&mut self) -> Body {
        self.body.take().unwrap_or_else(Body::empty)
    }

    /// Replaces the body with bytes the gateway wrote (a policy body rendered from what was
    /// decided), with their length and their own Content-MD5: the client's checksums were of
    /// the client's bytes.
    pub fn set_body(&mut self, bytes: Bytes, headers: &mut HeaderMap) {
        use base64::Engine as _;
        use md5::{Digest, Md5};
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
        let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&bytes));
        if let Ok(v) = HeaderValue::from_str(&md5) {
            headers.insert("content-md5", v);
        }
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
            telemetry: crate::ops::telemetry::Telemetry::new(),
        }
    }

    /// The secret key of a user, for s3s's signature check.
    #[must_use]
    pub fn secret_of(&self, access_key: &str) -> Option<&str> {
        self.users.get(access_key).map(|u| u.secret_key.expose())
    }

    async fn handle(&self, req: S3Request<Body>) -> Result<S3Response<Body>, GatewayError> {
        let user = req
            .credentials
            .as_ref()
            .and_then(|c| self.users.get(&c.access_key))
            .ok_or_else(|| GatewayError::AccessDenied("Access Denied".into()))?;
        let mut req = req;
        let mut query = Query::parse(req.uri.query().unwrap_or_default());
        let signature = crate::front::admission::admit(&mut req.headers, &query)?;
        query.remove_signature();
        let host = req.headers.get(header::HOST).and_then(|v| v.to_str().ok());
        let target = Target::resolve(req.uri.path(), host, self.base_domain.as_deref())?;
        let op = S3Op::classify(&req.method, &target, &query, &req.headers);
        tracing::debug!(op = op.name(), bucket = ?target.bucket, key = ?target.key, user = %user.access_key, "classified");
        crate::front::admission::check_signature_covers(signature, op, &req.method)?;

        if op == S3Op::Unknown && !matches!(req.method, Method::GET | Method::HEAD) {
            return Err(GatewayError::UnknownOperation(format!(
                "{} {}",
                req.method,
                req.uri.path()
            )));
        }
        authorize(user, op, &target, &req.headers)?;
        lock_headers::refuse_reserved_metadata(&req.headers)?;
        if matches!(
            op,
            S3Op::ListObjects | S3Op::ListObjectsV2 | S3Op::ListObjectVersions
        ) {
            query.normalise_listing();
        }
        let call = Call {
            user,
            op,
            method: req.method,
            target,
            query,
            headers: req.headers,
            body: Some(req.input),
            trailers: req.trailing_headers,
        };
        let context = crate::ops::telemetry::RequestContext {
            user: user.access_key.clone(),
            op: op.name(),
            bucket: call.target.bucket.clone(),
            key: call.target.key.clone(),
        };
        let bytes_in = declared_length(&call.headers, "x-amz-decoded-content-length")
            .or_else(|| declared_length(&call.headers, "content-length"))
            .unwrap_or(0);
        let result = crate::ops::telemetry::CURRENT
            .scope(context.clone(), self.dispatch(call))
            .await;
        let (status, bytes_out) = match &result {
            Ok(resp) => (
                resp.status.unwrap_or(StatusCode::OK).as_u16(),
                declared_length(&resp.headers, "content-length").unwrap_or(0),
            ),
            Err(e) => {
                if !matches!(e, GatewayError::Denied(_)) && e.is_refusal() {
                    // Refusals the policy did not make (the backend's retention, the
                    // user's buckets, an unknown operation) go to the decision log too.
                    let now = self.locks.now();
                    let refusal = Some(e.refusal_label());
                    crate::ops::telemetry::CURRENT.sync_scope(context, || {
                        self.record(now, None, None, refusal);
                    });
                }
                (e.status().as_u16(), 0)
            }
        };
        self.telemetry
            .request(op.name(), status, bytes_in, bytes_out);
        result
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

    /// Sends one request to the backend. Only a `Permit` opens this door.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn send(
        &self,
        method: Method,
        target: &Target,
        query: Option<&str>,
        headers: HeaderMap,
        body: ProxyBody,
        payload: Payload,
        _permit: Permit,
    ) -> Result<Response<Incoming>, GatewayError> {
        let mut path_and_query = target.backend_path();
        if let Some(q) = query {
            path_and_query.push('?');
            path_and_query.push_str(q);
        }
        let started = std::time::Instant::now();
        let resp = self
            .backend
            .send(method, &path_and_query, headers, body, payload)
            .await;
        self.telemetry.backend_latency(started.elapsed());
        if let Ok(r) = &resp {
            self.locks
                .time
                .observe_backend_date(r.headers().get(http::header::DATE));
        }
        resp
    }
}

/// A length header's value, when it is one.
fn declared_length(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.parse().ok()
}

/// A backend reply, streamed back to the client without its hop-by-hop headers.
pub(crate) fn reply(resp: Response<Incoming>) -> S3Response<Body> {
    let (parts, incoming) = resp.into_parts();
    let mut out = S3Response::with_status(Body::from(incoming), parts.status);
    out.headers = parts.headers;
    for name in DROPPED_RESPONSE_HEADERS {
        out.headers.remove(*name);
    }
    out
}

/// A reply the gateway makes itself.
pub(crate) fn reply_with(status: StatusCode, xml: Option<String>) -> S3Response<Body> {
    let mut out = match xml {
        Some(xml) => {
            let mut r = S3Response::with_status(Body::from(xml), status);
            r.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/xml"),
            );
            r
        }
        None => S3Response::with_status(Body::empty(), status),
    };
    out.headers.remove(header::TRANSFER_ENCODING);
    out
}

/// The user may address the request's bucket, and for a copy the source's bucket too; reads
/// need the read permission (everything else is decided by the policy).
fn authorize(
    user: &User,
    op: S3Op,
    target: &Target,
    headers: &HeaderMap,
) -> Result<(), GatewayError> {
    let denied = || GatewayError::AccessDenied("Access Denied".into());
    let reads =
        op.is_read_only() || op == S3Op::Unknown || headers.contains_key("x-amz-copy-source");
    if reads && !user.permissions.has(Permission::Read) {
        return Err(GatewayError::AccessDenied(
            "Access Denied: this key lacks the read permission.".into(),
        ));
    }
    if let Some(bucket) = &target.bucket
        && !user.buckets.allows(bucket)
    {
        return Err(denied());
    }
    if let Some(source) = headers.get("x-amz-copy-source") {
        let source = crate::front::admission::CopySource::parse(source)?;
        if !user.buckets.allows(&source.bucket) {
            return Err(denied());
        }
    }
    Ok(())
}

/// Whether a client header may reach the backend: S3's own (`x-amz-*`, user metadata
/// included), content and conditional headers, and a few plain HTTP ones. Anything else (a
/// store's own extensions such as MinIO's `x-minio-force-delete`, which deletes a whole prefix,
/// or RGW's and OSS's) would act on the backend without the gateway having decided on it.
fn forwardable(name: &HeaderName) -> bool {
    let n = name.as_str();
    n.starts_with("x-amz-")
        || n.starts_with("content-")
        || n.starts_with("if-")
        || matches!(
            n,
            "cache-control"
                | "expires"
                | "range"
                | "accept"
                | "accept-encoding"
                | "user-agent"
                | "origin"
        )
}

/// The client's end-to-end headers that an S3 backend reads, minus its signature, hop-by-hop
/// and decision headers.
pub(crate) fn backend_headers(incoming: &HeaderMap) -> HeaderMap {
    // Headers named in `Connection` are hop-by-hop too.
    let connection_named: Vec<HeaderName> = incoming
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    let mut out = HeaderMap::with_capacity(incoming.len());
    for (name, value) in incoming {
        let n = name.as_str();
        if DROPPED_REQUEST_HEADERS.contains(&n)
            || DECIDED_REQUEST_HEADERS.contains(&n)
            || connection_named.contains(name)
            || !forwardable(name)
        {
            continue;
        }
        if name == header::CONTENT_ENCODING {
            // aws-chunked framing was decoded by s3s; any other coding belongs to the object.
            let rest: Vec<&str> = value
                .to_str()
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("aws-chunked"))
                .collect();
            if !rest.is_empty()
                && let Ok(v) = HeaderValue::from_str(&rest.join(","))
            {
                out.append(name.clone(), v);
            }
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// s3s route that takes every request.
pub struct ForwardRoute {
    pub gateway: Arc<Gateway>,
}

#[async_trait::async_trait]
impl S3Route for ForwardRoute {
    fn is_match(&self, _: &Method, _: &http::Uri, _: &HeaderMap, _: &mut Extensions) -> bool {
        true
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let request_id = req
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        let method = req.method.clone();
        let path = req.uri.path().to_owned();
        self.gateway.handle(req).await.map_err(|e| {
            match &e {
                GatewayError::BackendUnavailable(_) | GatewayError::Internal(_) => {
                    tracing::error!(%request_id, %method, %path, error = %e, "request failed");
                }
                _ => tracing::info!(%request_id, %method, %path, error = %e, "request refused"),
            }
            e.into_s3(&request_id)
        })
    }
}

/// Users' secrets for s3s's signature check; an unknown key is `InvalidAccessKeyId`, as on AWS.
pub struct UserAuth {
    pub gateway: Arc<Gateway>,
}

#[async_trait::async_trait]
impl s3s::auth::S3Auth for UserAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<s3s::auth::SecretKey> {
        self.gateway
            .secret_of(access_key)
            .map(|s| s3s::auth::SecretKey::from(s.to_owned()))
            .ok_or_else(|| {
                S3Error::with_message(
                    s3s::S3ErrorCode::InvalidAccessKeyId,
                    "The AWS Access Key Id you provided does not exist in our records.",
                )
            })
    }
}

/// Virtual-host-style addressing for s3s's path parser: `<bucket>.<base_domain>[:port]`.
/// Any other host is path-style.
pub struct BaseDomainHost {
    pub base_domain: String,
}

impl s3s::host::S3Host for BaseDomainHost {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<s3s::host::VirtualHost<'a>> {
        let vh = s3s::host::VirtualHost::new(self.base_domain.as_str());
        Ok(
            match crate::front::target::virtual_host_bucket(host, &self.base_domain) {
                Some(bucket) => vh.with_bucket(bucket),
                None => vh,
            },
        )
    }
}

/// Placeholder S3 implementation: the catch-all route takes every request, so s3s never
/// dispatches to it, and if it ever did, every operation answers NotImplemented.
pub struct NoOperations;

#[async_trait::async_trait]
impl s3s::S3 for NoOperations {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_and_hop_headers_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            HeaderValue::from_static("AWS4-HMAC-SHA256 ..."),
        );
        h.insert(
            "x-amz-content-sha256",
            HeaderValue::from_static("STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
        );
        h.insert(
            "x-amz-decoded-content-length",
            HeaderValue::from_static("5"),
        );
        h.insert("content-encoding", HeaderValue::from_static("aws-chunked"));
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("x-minio-force-delete", HeaderValue::from_static("true"));
        h.insert("x-amz-meta-a", HeaderValue::from_static("b"));
        h.insert("content-length", HeaderValue::from_static("5"));
        let out = backend_headers(&h);
        let names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-amz-meta-a", "content-length"]);

        let mut h = HeaderMap::new();
        h.insert(
            "content-encoding",
            HeaderValue::from_static("aws-chunked,gzip"),
        );
        assert_eq!(
            backend_headers(&h)
                .get("content-encoding")
                .map(HeaderValue::as_bytes),
            Some(&b"gzip"[..])
        );
    }
}
