//! The request path: every authenticated request is classified, authorised, decided (see
//! `enforce`) and forwarded raw.
//!
//! s3s has already verified the signature (header, presigned or aws-chunked) and decodes the
//! body as a stream; this module never reads a body. What must never happen here: a request
//! that is not recognised and is not a read reaching the backend, or any request reaching it
//! without a `Permit`.

pub mod admission;

use std::sync::Arc;

use http::header;
use http::{HeaderMap, Method, StatusCode};
use hyper::http::Extensions;
use policy::permissions::Permission;
use s3s::route::S3Route;
use s3s::{Body, S3Error, S3Request, S3Response, S3Result};

use crate::config::User;
use crate::enforce::{Call, Gateway};
use crate::error::GatewayError;
use crate::s3::lock_headers;
use crate::s3::op::S3Op;
use crate::s3::target::{Query, Target};

/// The id of one request, put in the request's extensions by the server and echoed in
/// `x-amz-request-id` and in every error body.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl Gateway {
    async fn handle(&self, req: S3Request<Body>) -> Result<S3Response<Body>, GatewayError> {
        let user = req
            .credentials
            .as_ref()
            .and_then(|c| self.user(&c.access_key))
            .ok_or_else(|| GatewayError::AccessDenied("Access Denied".into()))?;
        let request_id = req
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        let mut context = crate::enforce::telemetry::RequestContext {
            user: user.access_key.clone(),
            op: S3Op::Unknown.name(),
            bucket: None,
            key: None,
        };
        let result = match self.prepare(user, req, &mut context) {
            Ok(call) => {
                let bytes_in = declared_length(&call.headers, "x-amz-decoded-content-length")
                    .or_else(|| declared_length(&call.headers, "content-length"))
                    .unwrap_or(0);
                // One span per request: every log line of its handling carries who asked
                // for what.
                let span = tracing::info_span!(
                    "request",
                    id = %request_id,
                    op = context.op,
                    bucket = context.bucket.as_deref().unwrap_or_default(),
                    key = context.key.as_deref().unwrap_or_default(),
                    user = %user.access_key,
                );
                let result = tracing::Instrument::instrument(
                    crate::enforce::telemetry::CURRENT.scope(context.clone(), self.dispatch(call)),
                    span,
                )
                .await;
                (result, bytes_in)
            }
            Err(e) => (Err(e), 0),
        };
        let (result, bytes_in) = result;
        let (status, bytes_out) = match &result {
            Ok(resp) => (
                resp.status.unwrap_or(StatusCode::OK).as_u16(),
                declared_length(&resp.headers, "content-length").unwrap_or(0),
            ),
            Err(e) => {
                if !matches!(e, GatewayError::Denied(_)) && e.is_refusal() {
                    // Refusals the policy did not make (admission, the user's buckets, an
                    // unknown operation, the backend's retention) go to the decision log too.
                    let now = self.locks.now();
                    let refusal = Some(e.refusal_label());
                    let op = context.op;
                    crate::enforce::telemetry::CURRENT.sync_scope(context, || {
                        self.record(now, None, None, refusal);
                    });
                    self.telemetry.request(op, e.status().as_u16(), bytes_in, 0);
                    return result;
                }
                (e.status().as_u16(), 0)
            }
        };
        self.telemetry
            .request(context.op, status, bytes_in, bytes_out);
        result
    }

    /// Everything before the decision: one meaning for the request (`admission`), what it
    /// addresses, which operation it is, and whether the user may ask for it. `context` learns
    /// the operation, bucket and key as soon as they are known, for the record of a refusal.
    fn prepare<'a>(
        &self,
        user: &'a User,
        req: S3Request<Body>,
        context: &mut crate::enforce::telemetry::RequestContext,
    ) -> Result<Call<'a>, GatewayError> {
        let mut req = req;
        let mut query = Query::parse(req.uri.query().unwrap_or_default());
        let signature = crate::front::admission::admit(&mut req.headers, &query)?;
        query.remove_signature();
        let host = req.headers.get(header::HOST).and_then(|v| v.to_str().ok());
        let target = Target::resolve(req.uri.path(), host, self.base_domain())?;
        let op = S3Op::classify(&req.method, &target, &query, &req.headers);
        context.op = op.name();
        context.bucket.clone_from(&target.bucket);
        context.key.clone_from(&target.key);
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
        Ok(Call {
            user,
            op,
            method: req.method,
            target,
            version_id: query.get("versionId").map(str::to_owned),
            upload_id: query.get("uploadId").map(str::to_owned),
            query,
            headers: req.headers,
            body: Some(req.input),
            trailers: req.trailing_headers,
        })
    }
}

/// A length header's value, when it is one.
fn declared_length(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.parse().ok()
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
        let source = crate::s3::target::CopySource::parse(source)?;
        if !user.buckets.allows(&source.bucket) {
            return Err(denied());
        }
    }
    Ok(())
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
            match crate::s3::target::virtual_host_bucket(host, &self.base_domain) {
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
