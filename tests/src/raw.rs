//! Raw HTTP for the tests: requests signed by hand (SigV4, presigned, with unsigned extras),
//! sent as they are, and their replies read whole.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http_body_util::{BodyExt, combinators::BoxBody};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::{ACCESS_KEY, REGION, SECRET_KEY};

/// A body for raw requests.
pub type RawBody = BoxBody<Bytes, std::convert::Infallible>;

/// An empty body for raw requests.
#[must_use]
pub fn empty_raw_body() -> RawBody {
    http_body_util::Empty::new().boxed()
}

/// A raw HTTP reply, whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    /// A response read whole (status, headers, body as text).
    ///
    /// # Panics
    /// When the body cannot be read.
    pub async fn read(resp: http::Response<hyper::body::Incoming>) -> Self {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        Self {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// The text of `<Code>` in an S3 error body.
    #[must_use]
    pub fn code(&self) -> &str {
        between(&self.body, "<Code>", "</Code>").unwrap_or("")
    }
    #[must_use]
    pub fn message(&self) -> &str {
        between(&self.body, "<Message>", "</Message>").unwrap_or("")
    }
}

fn between<'a>(s: &'a str, a: &str, b: &str) -> Option<&'a str> {
    let start = s.find(a)? + a.len();
    let end = s[start..].find(b)? + start;
    Some(&s[start..end])
}

/// Sends a request signed with SigV4 (`UNSIGNED-PAYLOAD`, or the trailer variant when the headers
/// say `STREAMING-UNSIGNED-PAYLOAD-TRAILER`) by `access_key`/`secret_key`.
///
/// # Panics
/// When the request cannot be built or sent at all.
pub async fn signed_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: RawBody,
    access_key: &str,
    secret_key: &str,
) -> Reply {
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut req = req.body(body).expect("request");
    sign_request(&mut req, access_key, secret_key);
    send(req).await
}

/// Signs `req` in place with SigV4 as `access_key`/`secret_key` (`UNSIGNED-PAYLOAD`, or the
/// trailer variant when its headers say `STREAMING-UNSIGNED-PAYLOAD-TRAILER`).
///
/// # Panics
/// When the request cannot be signed (a header value that is not ASCII).
pub fn sign_request<B>(req: &mut http::Request<B>, access_key: &str, secret_key: &str) {
    let identity: Identity = Credentials::new(access_key, secret_key, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.percent_encoding_mode = aws_sigv4::http_request::PercentEncodingMode::Single;
    // S3 signs the path as sent: `/b/./k` must reach the gateway as `/b/./k`, signed so.
    settings.uri_path_normalization_mode =
        aws_sigv4::http_request::UriPathNormalizationMode::Disabled;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .expect("params")
        .into();
    let pairs: Vec<(&str, &str)> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str(), v.to_str().expect("ascii")))
        .collect();
    let trailer = req
        .headers()
        .get("x-amz-content-sha256")
        .is_some_and(|v| v.as_bytes() == b"STREAMING-UNSIGNED-PAYLOAD-TRAILER");
    let payload = if trailer {
        SignableBody::StreamingUnsignedPayloadTrailer
    } else {
        SignableBody::UnsignedPayload
    };
    let url = req.uri().to_string();
    let signable = SignableRequest::new(req.method().as_str(), &url, pairs.into_iter(), payload)
        .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    instructions.apply_to_request_http1x(req);
}

/// The sending end of a [`held_body`].
pub type BodyFeed =
    tokio::sync::mpsc::Sender<Result<http_body::Frame<Bytes>, std::convert::Infallible>>;

/// A request body the test feeds piece by piece (`feed.send(Ok(Frame::data(..)))`), so that an
/// upload can be held half sent; it ends when the feed is dropped.
#[must_use]
pub fn held_body() -> (BodyFeed, RawBody) {
    let (feed, mut rx) = tokio::sync::mpsc::channel(4);
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    (feed, http_body_util::StreamBody::new(stream).boxed())
}

/// A request signed as the backup agent and sent on one open HTTP/1.1 connection (`authority`
/// is the `Host` it is signed for), for tests that must know which connection carries it.
///
/// # Panics
/// When the connection is closed or the request cannot be sent.
pub async fn send_on(
    sender: &mut hyper::client::conn::http1::SendRequest<RawBody>,
    authority: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: RawBody,
) -> Reply {
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("http://{authority}{path}"))
        .header("host", authority);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut req = req.body(body).expect("request");
    sign_request(&mut req, ACCESS_KEY, SECRET_KEY);
    *req.uri_mut() = path.parse().expect("origin-form path");
    sender.ready().await.expect("connection open");
    Reply::read(sender.send_request(req).await.expect("response")).await
}

/// The path as S3 signs it: percent-decoded, then every byte but `A-Za-z0-9-._~/` as `%XX`.
#[must_use]
pub fn canonical_path(path: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(path).collect::<Vec<u8>>();
    let mut out = String::new();
    for b in decoded {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A request to `base_url`, signed by `keys` for the path as S3 canonicalises it and sent with
/// the path as written (how a hand-made client sends `%2E` or `//`, which an SDK never sends);
/// `unsigned` headers are added after signing, as whoever holds a request could.
///
/// # Panics
/// When the request cannot be built or sent at all.
pub async fn hand_signed(
    base_url: &str,
    keys: (&str, &str),
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    unsigned: &[(&'static str, &'static str)],
    body: &str,
) -> Reply {
    let (path, query) = path_and_query
        .split_once('?')
        .map_or((path_and_query, None), |(p, q)| (p, Some(q)));
    let with_query = |p: String| match query {
        Some(q) => format!("{base_url}{p}?{q}"),
        None => format!("{base_url}{p}"),
    };
    let mut req = http::Request::builder()
        .method(method)
        .uri(with_query(canonical_path(path)));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = if body.is_empty() {
        empty_raw_body()
    } else {
        full(Bytes::from(body.to_owned()))
    };
    let mut req = req.body(body).expect("request");
    sign_request(&mut req, keys.0, keys.1);
    for (k, v) in unsigned {
        req.headers_mut()
            .insert(*k, http::HeaderValue::from_static(v));
    }
    *req.uri_mut() = with_query(path.to_owned()).parse().expect("uri");
    send(req).await
}

/// The Content-MD5 of a body.
#[must_use]
pub fn content_md5(body: &str) -> String {
    use base64::Engine as _;
    use md5::Digest as _;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body.as_bytes()))
}

/// Sends a request as it is.
///
/// # Panics
/// When it cannot be sent at all.
pub async fn send(req: http::Request<RawBody>) -> Reply {
    let client: Client<HttpConnector, RawBody> = Client::builder(TokioExecutor::new()).build_http();
    Reply::read(client.request(req).await.expect("send")).await
}

/// Sends a presigned request as a plain HTTP client would: its method, URL and headers, no
/// signing of its own.
///
/// # Panics
/// When it cannot be sent at all.
pub async fn send_presigned(
    presigned: &aws_sdk_s3::presigning::PresignedRequest,
    body: RawBody,
) -> Reply {
    let mut req = http::Request::builder()
        .method(presigned.method())
        .uri(presigned.uri());
    for (k, v) in presigned.headers() {
        req = req.header(k, v);
    }
    send(req.body(body).expect("presigned request")).await
}

/// A whole body.
#[must_use]
pub fn full(bytes: impl Into<Bytes>) -> RawBody {
    http_body_util::Full::new(bytes.into()).boxed()
}

/// A streamed body of unknown length (sent chunked).
#[must_use]
pub fn chunked(bytes: impl Into<Bytes>) -> RawBody {
    let chunk: Result<http_body::Frame<Bytes>, std::convert::Infallible> =
        Ok(http_body::Frame::data(bytes.into()));
    http_body_util::StreamBody::new(futures::stream::iter([chunk])).boxed()
}
