//! What a request must satisfy before anything is decided about it: every header and parameter
//! the decision reads has one meaning, is covered by the client's signature, and reaches the
//! backend as decided or not at all.
//!
//! s3s has verified the signature. What it leaves open, and what is closed here:
//! - SigV2 signs neither `retention` nor `legal-hold` (nor any sub-resource newer than its list),
//!   so a SigV2 request or presigned URL could be extended by whoever holds it with a
//!   sub-resource that changes protection. SigV2 is accepted for reads only.
//! - SigV4 signs only the headers it lists: an `x-amz-*` header outside the list (a lock date,
//!   the bypass header, a copy source) could be added to a presigned URL by whoever holds it.
//!   Every `x-amz-*` header must be signed, as on AWS.
//! - A presigned URL valid for more than seven days is refused, as on AWS.
//! - A parameter or decision header given twice could be read one way here and another way by
//!   the backend: refused.
//! - A header named in `Connection` is dropped before the backend (it is hop-by-hop), so a
//!   decision must not read it: a request that names one of its own end-to-end headers there
//!   is refused.
//! - `x-amz-copy-source` is rewritten in its one canonical form, checked like any key.
//!
//! What must never happen here: a request passing with a header or parameter whose meaning
//! differs between the gateway's decision and the backend's action.

use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Method};

use crate::error::GatewayError;
use crate::s3::op::S3Op;
use crate::s3::target::{CopySource, Query};

/// The longest validity of a presigned URL, in seconds (seven days, as on AWS).
pub const MAX_PRESIGNED_SECS: u64 = 7 * 24 * 3600;

/// `Connection` options that name no end-to-end header (hop-by-hop ones are dropped anyway;
/// `Upgrade, HTTP2-Settings` is what curl and Java send to offer HTTP/2).
const CONNECTION_OPTIONS: &[&str] = &[
    "close",
    "keep-alive",
    "upgrade",
    "te",
    "http2-settings",
    "trailer",
    "transfer-encoding",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
];

/// Headers outside `x-amz-*` whose single value the gateway reads.
const SINGLE_HEADERS: &[&str] = &["host", "content-md5", "content-encoding"];

/// How a request was signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature {
    V4Header,
    V4Query,
    V2Header,
    V2Query,
}

impl Signature {
    /// The signature scheme of a request. A request that carries the parts of more than one
    /// (an `Authorization` header and presigned parameters, or V2 and V4 parameters) is
    /// refused: s3s verifies one of them in its own order, and the checks here must be about
    /// the one it verified.
    ///
    /// # Errors
    /// 400 InvalidArgument for more than one mechanism; 403 for none the gateway knows.
    pub fn of(headers: &HeaderMap, raw_query: &Query) -> Result<Self, GatewayError> {
        let header = headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes);
        let v4_query = ["X-Amz-Signature", "X-Amz-Algorithm", "X-Amz-Credential"]
            .iter()
            .any(|p| raw_query.has(p));
        let v2_query = ["Signature", "AWSAccessKeyId"]
            .iter()
            .any(|p| raw_query.has(p));
        let mechanisms =
            usize::from(header.is_some()) + usize::from(v4_query) + usize::from(v2_query);
        if mechanisms > 1 {
            return Err(GatewayError::InvalidArgument(
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified".into(),
            ));
        }
        match header {
            Some(a) if a.starts_with(b"AWS4-HMAC-SHA256 ") => Ok(Self::V4Header),
            Some(a) if a.starts_with(b"AWS ") => Ok(Self::V2Header),
            None if v4_query => Ok(Self::V4Query),
            None if v2_query => Ok(Self::V2Query),
            _ => Err(GatewayError::AccessDenied(
                "wormgate accepts requests signed with AWS Signature Version 4 (or Version 2 for reads) only".into(),
            )),
        }
    }
}

/// The checks that need no classification: parameters and headers with one meaning, signed
/// headers, presigned validity, `Connection`. Rewrites `x-amz-copy-source` canonically.
///
/// # Errors
/// 400 for an ambiguous request, 403 for an unsigned header or an over-long presigned URL.
pub fn admit(headers: &mut HeaderMap, raw_query: &Query) -> Result<Signature, GatewayError> {
    refuse_repeated_parameters(raw_query)?;
    if raw_query.get("versionId") == Some("") {
        return Err(GatewayError::InvalidArgument(
            "Version id cannot be the empty string".into(),
        ));
    }
    refuse_repeated_headers(headers)?;
    refuse_connection_named(headers)?;
    let signature = Signature::of(headers, raw_query)?;
    match signature {
        Signature::V4Header => {
            // The components as s3s reads them: after the algorithm, split at commas.
            let signed = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("AWS4-HMAC-SHA256 "))
                .and_then(|rest| {
                    rest.split(',')
                        .map(str::trim)
                        .find_map(|c| c.strip_prefix("SignedHeaders="))
                })
                .unwrap_or_default()
                .to_owned();
            refuse_unsigned_headers(headers, &signed)?;
        }
        Signature::V4Query => {
            let expires: u64 = raw_query
                .get("X-Amz-Expires")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| {
                    GatewayError::AuthorizationQuery("X-Amz-Expires must be a number".into())
                })?;
            if expires > MAX_PRESIGNED_SECS {
                return Err(GatewayError::AuthorizationQuery(format!(
                    "X-Amz-Expires must be less than a week (in seconds) that is {MAX_PRESIGNED_SECS}"
                )));
            }
            refuse_unsigned_headers(
                headers,
                raw_query.get("X-Amz-SignedHeaders").unwrap_or_default(),
            )?;
        }
        Signature::V2Query => {
            // SigV2 has no signing time: the URL may live at most seven days from now.
            let expires: i64 = raw_query
                .get("Expires")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| {
                    GatewayError::AuthorizationQuery("Expires must be a number".into())
                })?;
            let limit = chrono::Utc::now().timestamp()
                + i64::try_from(MAX_PRESIGNED_SECS).unwrap_or(i64::MAX);
            if expires > limit {
                return Err(GatewayError::AuthorizationQuery(
                    "a presigned URL is valid for at most a week".into(),
                ));
            }
        }
        Signature::V2Header => {}
    }
    canonical_copy_source(headers)?;
    Ok(signature)
}

/// SigV2 is accepted for reads only: it does not sign the sub-resources that change
/// protection (`retention`, `legal-hold`), so a SigV2 URL could be turned into one that does.
///
/// # Errors
/// 403 AccessDenied for anything but a known read.
pub fn check_signature_covers(
    signature: Signature,
    op: S3Op,
    method: &Method,
) -> Result<(), GatewayError> {
    let v2 = matches!(signature, Signature::V2Header | Signature::V2Query);
    if v2 && !(op.is_read_only() && matches!(*method, Method::GET | Method::HEAD)) {
        return Err(GatewayError::AccessDenied(
            "Signature Version 2 is accepted for reads only: it does not sign every sub-resource that changes object lock. Sign with Signature Version 4 (AWS4-HMAC-SHA256).".into(),
        ));
    }
    Ok(())
}

fn refuse_repeated_parameters(query: &Query) -> Result<(), GatewayError> {
    match query.repeated() {
        Some(name) => Err(GatewayError::InvalidArgument(format!(
            "the query parameter '{name}' is given more than once"
        ))),
        None => Ok(()),
    }
}

/// A header the gateway reads as one value: every `x-amz-*` but user metadata, and a few more.
fn read_as_one(name: &HeaderName) -> bool {
    let n = name.as_str();
    (n.starts_with("x-amz-") && !n.starts_with("x-amz-meta-")) || SINGLE_HEADERS.contains(&n)
}

fn refuse_repeated_headers(headers: &HeaderMap) -> Result<(), GatewayError> {
    for name in headers.keys() {
        if read_as_one(name) && headers.get_all(name).iter().nth(1).is_some() {
            return Err(GatewayError::InvalidArgument(format!(
                "the header {name} is given more than once"
            )));
        }
    }
    Ok(())
}

fn refuse_connection_named(headers: &HeaderMap) -> Result<(), GatewayError> {
    for value in headers.get_all(header::CONNECTION) {
        let value = value.to_str().map_err(|_| {
            GatewayError::InvalidArgument("the Connection header is not ASCII".into())
        })?;
        for option in value.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let option = option.to_ascii_lowercase();
            if CONNECTION_OPTIONS.contains(&option.as_str()) {
                continue;
            }
            if headers.contains_key(option.as_str()) {
                return Err(GatewayError::InvalidRequest(format!(
                    "Connection names the request's own header {option}, which a proxy must drop: wormgate would decide on a header the storage never sees"
                )));
            }
        }
    }
    Ok(())
}

fn refuse_unsigned_headers(headers: &HeaderMap, signed: &str) -> Result<(), GatewayError> {
    let signed: Vec<&str> = signed.split(';').map(str::trim).collect();
    for name in headers.keys() {
        let n = name.as_str();
        if n.starts_with("x-amz-") && !signed.iter().any(|s| s.eq_ignore_ascii_case(n)) {
            return Err(GatewayError::AccessDenied(format!(
                "There were headers present in the request which were not signed: {n}"
            )));
        }
    }
    Ok(())
}

/// Rewrites `x-amz-copy-source` as `/bucket/key[?versionId=v]`, canonically encoded, after
/// the same checks as a request path; only `versionId` may follow the key.
fn canonical_copy_source(headers: &mut HeaderMap) -> Result<(), GatewayError> {
    let Some(raw) = headers.get("x-amz-copy-source") else {
        return Ok(());
    };
    let source = CopySource::parse(raw)?;
    let value = HeaderValue::from_str(&source.header_value())
        .map_err(|_| GatewayError::Internal("copy source header".into()))?;
    headers.insert("x-amz-copy-source", value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    const V4: &str = "AWS4-HMAC-SHA256 Credential=AK/20261201/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-object-lock-mode, Signature=abc";

    fn v4() -> HeaderMap {
        headers(&[("authorization", V4)])
    }

    /// `pairs` with a SigV4 Authorization that lists them all as signed.
    fn signed(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut names: Vec<&str> = pairs.iter().map(|(k, _)| *k).collect();
        names.extend(["host", "x-amz-content-sha256", "x-amz-date"]);
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=AK/20261201/us-east-1/s3/aws4_request, SignedHeaders={}, Signature=abc",
            names.join(";")
        );
        let mut h = headers(pairs);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&auth).expect("value"),
        );
        h
    }

    #[test]
    fn one_authentication_mechanism_only() {
        let q = Query::parse(
            "X-Amz-Signature=0&X-Amz-Expires=1&Signature=s&AWSAccessKeyId=a&Expires=1",
        );
        assert!(matches!(
            admit(&mut HeaderMap::new(), &q),
            Err(GatewayError::InvalidArgument(_))
        ));
        let q = Query::parse("retention&X-Amz-Signature=0&X-Amz-Expires=1");
        assert!(
            admit(&mut v4(), &q).is_err(),
            "a header and a presigned query"
        );
        let q = Query::parse("Signature=s&AWSAccessKeyId=a&Expires=1");
        let mut h = headers(&[("authorization", "AWS a:b")]);
        assert!(admit(&mut h, &q).is_err());
        assert!(matches!(
            admit(&mut HeaderMap::new(), &Query::default()),
            Err(GatewayError::AccessDenied(_))
        ));
    }

    #[test]
    fn every_amz_header_must_be_signed() {
        let mut h = headers(&[
            ("authorization", V4),
            ("x-amz-date", "x"),
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
            ("x-amz-object-lock-mode", "COMPLIANCE"),
        ]);
        assert!(admit(&mut h.clone(), &Query::default()).is_ok());
        h.insert(
            "x-amz-bypass-governance-retention",
            HeaderValue::from_static("true"),
        );
        let e = admit(&mut h, &Query::default()).expect_err("unsigned");
        assert!(matches!(e, GatewayError::AccessDenied(m) if m.contains("not signed")));
    }

    #[test]
    fn presigned_urls_live_at_most_a_week() {
        let q = |secs: u64| {
            Query::parse(&format!(
                "X-Amz-Signature=a&X-Amz-Expires={secs}&X-Amz-SignedHeaders=host"
            ))
        };
        assert!(admit(&mut HeaderMap::new(), &q(MAX_PRESIGNED_SECS)).is_ok());
        assert!(matches!(
            admit(&mut HeaderMap::new(), &q(MAX_PRESIGNED_SECS + 1)),
            Err(GatewayError::AuthorizationQuery(_))
        ));
        let far = chrono::Utc::now().timestamp() + 8 * 24 * 3600;
        let v2 = Query::parse(&format!("AWSAccessKeyId=a&Signature=s&Expires={far}"));
        assert!(admit(&mut HeaderMap::new(), &v2).is_err());
    }

    #[test]
    fn sigv2_is_for_reads() {
        let v2 = Signature::V2Query;
        assert!(check_signature_covers(v2, S3Op::GetObject, &Method::GET).is_ok());
        for op in [
            S3Op::PutObject,
            S3Op::PutObjectLegalHold,
            S3Op::DeleteObject,
        ] {
            assert!(
                check_signature_covers(v2, op, &Method::PUT).is_err(),
                "{op:?}"
            );
        }
        assert!(check_signature_covers(Signature::V4Query, S3Op::PutObject, &Method::PUT).is_ok());
    }

    #[test]
    fn one_meaning_per_parameter_and_header() {
        let q = Query::parse("versionId=a&versionId=b");
        assert!(matches!(
            admit(&mut signed(&[]), &q),
            Err(GatewayError::InvalidArgument(_))
        ));
        let mut h = signed(&[
            ("x-amz-object-lock-mode", "GOVERNANCE"),
            ("x-amz-object-lock-mode", "COMPLIANCE"),
        ]);
        assert!(admit(&mut h, &Query::default()).is_err());
        let mut h = signed(&[("x-amz-meta-a", "1"), ("x-amz-meta-a", "2")]);
        assert!(admit(&mut h, &Query::default()).is_ok());
    }

    #[test]
    fn connection_may_not_name_the_requests_own_headers() {
        let mut h = signed(&[
            ("connection", "keep-alive, x-amz-object-lock-mode"),
            ("x-amz-object-lock-mode", "COMPLIANCE"),
        ]);
        assert!(matches!(
            admit(&mut h, &Query::default()),
            Err(GatewayError::InvalidRequest(_))
        ));
        let mut h = signed(&[("connection", "keep-alive, close, x-not-here")]);
        assert!(admit(&mut h, &Query::default()).is_ok());
        let mut h = signed(&[
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", "h2c"),
            ("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA"),
        ]);
        assert!(admit(&mut h, &Query::default()).is_ok());
    }

    #[test]
    fn copy_sources_are_made_canonical() {
        let mut h = signed(&[("x-amz-copy-source", "b/dir/a%20b?versionId=v%201")]);
        admit(&mut h, &Query::default()).expect("valid");
        assert_eq!(
            h.get("x-amz-copy-source").map(HeaderValue::as_bytes),
            Some(&b"/b/dir/a%20b?versionId=v%201"[..])
        );
        for bad in [
            "b/./k",
            "b/y/../k",
            "/b//k",
            "b/k?versionId=1&versionId=2",
            "b/k?partNumber=1",
            "b",
            "../b/k",
        ] {
            let mut h = signed(&[("x-amz-copy-source", bad)]);
            assert!(admit(&mut h, &Query::default()).is_err(), "{bad}");
        }
    }
}
