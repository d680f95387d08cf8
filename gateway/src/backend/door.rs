//! What crosses the door to the backend: the client's headers an S3 backend may act on
//! (never its signature, hop-by-hop or decision headers, nor a store's own extensions), and
//! the backend's reply without its hop-by-hop headers.

use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Response};
use hyper::body::Incoming;
use s3s::{Body, S3Response};

use crate::s3::lock_headers;

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
