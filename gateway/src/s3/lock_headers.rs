//! Object lock in headers: what a client asks for on an upload, what the backend says about a
//! version, and the `x-amz-meta-wormgate-*` metadata that carries a lock on a backend without one.
//!
//! What must never happen here: a lock the gateway cannot read being taken for "no lock". An
//! unreadable value is an error (from a client) or `None` (from the backend: lock state unknown).

use chrono::{DateTime, SecondsFormat, Utc};
use http::{HeaderMap, HeaderValue};
use policy::lock::{LegalHold, ObjectLock, Retention, RetentionMode};
use policy::permissions::{Permission, Permissions};
use policy::rules::Bypass;

use crate::error::GatewayError;

pub const MODE: &str = "x-amz-object-lock-mode";
pub const RETAIN_UNTIL: &str = "x-amz-object-lock-retain-until-date";
pub const LEGAL_HOLD: &str = "x-amz-object-lock-legal-hold";
pub const BYPASS: &str = "x-amz-bypass-governance-retention";
pub const BUCKET_LOCK_ENABLED: &str = "x-amz-bucket-object-lock-enabled";

/// Metadata names (as headers) that carry a lock on a gateway-profile object. Reserved: a client
/// can never set them.
pub const META_PREFIX: &str = "x-amz-meta-wormgate-";
pub const META_MODE: &str = "x-amz-meta-wormgate-lock-mode";
pub const META_RETAIN_UNTIL: &str = "x-amz-meta-wormgate-retain-until";
pub const META_LEGAL_HOLD: &str = "x-amz-meta-wormgate-legal-hold";

/// Every request header that asks for a lock, stripped before a gateway-profile backend.
pub const REQUEST_LOCK_HEADERS: [&str; 4] = [MODE, RETAIN_UNTIL, LEGAL_HOLD, BYPASS];

fn text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, GatewayError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map(str::trim)
                .map_err(|_| GatewayError::InvalidArgument(format!("{name} is not ASCII")))
        })
        .transpose()
}

/// Parses an ISO 8601 date as S3 accepts it (`2030-01-01T00:00:00Z`, with or without fraction
/// or offset) to the exact instant it names (see [`instant`]).
#[must_use]
pub fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .and_then(|d| instant(d.with_timezone(&Utc)))
}

/// The instant a date names, in UTC, at the millisecond precision S3 keeps: a fraction below
/// the millisecond (or a leap second) rounds *up*, so a date the gateway decides on and
/// forwards is never earlier than the one the client asked for.
#[must_use]
pub fn instant(d: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let below_ms = !d.timestamp_subsec_nanos().is_multiple_of(1_000_000);
    DateTime::from_timestamp_millis(d.timestamp_millis().checked_add(i64::from(below_ms))?)
}

/// A date as S3 writes it: `2030-01-01T00:00:00.000Z`.
#[must_use]
pub fn format_date(d: DateTime<Utc>) -> String {
    d.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The lock an upload asks for in its headers; `None` when it names none.
///
/// # Errors
/// A mode without a date or the reverse, an unknown mode or hold value, a date that is not
/// ISO 8601: 400 InvalidArgument, as on AWS.
pub fn requested(headers: &HeaderMap) -> Result<Option<ObjectLock>, GatewayError> {
    let mode = text(headers, MODE)?;
    let until = text(headers, RETAIN_UNTIL)?;
    let hold = text(headers, LEGAL_HOLD)?;
    if mode.is_none() && until.is_none() && hold.is_none() {
        return Ok(None);
    }
    let retention = match (mode, until) {
        (None, None) => None,
        (Some(m), Some(u)) => {
            let mode = RetentionMode::from_s3(m).ok_or_else(|| {
                GatewayError::InvalidArgument("Unknown wormMode directive.".into())
            })?;
            let until = parse_date(u).ok_or_else(|| {
                GatewayError::InvalidArgument(
                    "The retain until date must be provided in ISO 8601 format".into(),
                )
            })?;
            Some(Retention { mode, until })
        }
        _ => {
            return Err(GatewayError::InvalidArgument(
                "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied"
                    .into(),
            ));
        }
    };
    let legal_hold = match hold {
        None => LegalHold::Off,
        Some(h) => LegalHold::from_s3(h).ok_or_else(|| {
            GatewayError::InvalidArgument("Legal Hold must be either of 'ON' or 'OFF'".into())
        })?,
    };
    Ok(Some(ObjectLock {
        retention,
        legal_hold,
    }))
}

/// `x-amz-bypass-governance-retention: true`.
///
/// # Errors
/// A value other than true/false.
pub fn bypass(headers: &HeaderMap) -> Result<Bypass, GatewayError> {
    match text(headers, BYPASS)? {
        None => Ok(Bypass::NotRequested),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(Bypass::Requested),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(Bypass::NotRequested),
        Some(_) => Err(GatewayError::InvalidArgument(format!(
            "{BYPASS} must be true or false"
        ))),
    }
}

/// Whether the request carries the integrity check AWS demands of writes with lock parameters:
/// Content-MD5 or any `x-amz-checksum-*` (as a header, or announced as a trailer).
#[must_use]
pub fn has_checksum(headers: &HeaderMap) -> bool {
    headers.contains_key("content-md5")
        || headers
            .keys()
            .any(|k| k.as_str().starts_with("x-amz-checksum-"))
        || headers
            .get("x-amz-trailer")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("x-amz-checksum-"))
}

/// The reply AWS gives to a lock-bearing write without a checksum.
#[must_use]
pub fn missing_checksum() -> GatewayError {
    GatewayError::InvalidRequest(
        "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters"
            .into(),
    )
}

/// Refuses a client's attempt to set the reserved metadata.
///
/// # Errors
/// 400 InvalidArgument naming the header.
pub fn refuse_reserved_metadata(headers: &HeaderMap) -> Result<(), GatewayError> {
    match headers.keys().find(|k| k.as_str().starts_with(META_PREFIX)) {
        Some(k) => Err(GatewayError::InvalidArgument(format!(
            "{k} is reserved: wormgate records object locks there"
        ))),
        None => Ok(()),
    }
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

/// Removes the lock request headers: for a backend without object lock of its own, which
/// would refuse them or, worse, ignore them.
pub fn strip_requested(headers: &mut HeaderMap) {
    for name in REQUEST_LOCK_HEADERS {
        headers.remove(name);
    }
}

/// Writes `lock` as S3's lock request headers, dates in UTC at millisecond precision: what a
/// native backend receives is exactly what the gateway decided, never the client's text.
pub fn set_requested(headers: &mut HeaderMap, lock: &ObjectLock) {
    strip_requested(headers);
    if let Some(r) = lock.retention {
        insert(headers, MODE, r.mode.as_s3());
        insert(headers, RETAIN_UNTIL, &format_date(r.until));
    }
    if lock.legal_hold == LegalHold::On {
        insert(headers, LEGAL_HOLD, LegalHold::On.as_s3());
    }
}

/// Sets the bypass header for a native backend only when the client asked for it *and* holds
/// the bypass permission: the backend honours the header from anyone the gateway forwards.
pub fn set_bypass(headers: &mut HeaderMap, bypass: Bypass, caller: Permissions) {
    headers.remove(BYPASS);
    if bypass == Bypass::Requested && caller.has(Permission::BypassGovernance) {
        headers.insert(BYPASS, HeaderValue::from_static("true"));
    }
}

/// Writes `lock` as the reserved metadata (replacing any).
pub fn set_metadata(headers: &mut HeaderMap, lock: &ObjectLock) {
    for name in [META_MODE, META_RETAIN_UNTIL, META_LEGAL_HOLD] {
        headers.remove(name);
    }
    if let Some(r) = lock.retention {
        insert(headers, META_MODE, r.mode.as_s3());
        insert(headers, META_RETAIN_UNTIL, &format_date(r.until));
    }
    if lock.legal_hold == LegalHold::On {
        insert(headers, META_LEGAL_HOLD, LegalHold::On.as_s3());
    }
}

/// Writes the legal hold's metadata, OFF too (for a version whose hold was set once).
pub fn set_hold_metadata(headers: &mut HeaderMap, hold: LegalHold) {
    insert(headers, META_LEGAL_HOLD, hold.as_s3());
}

/// Writes `lock` as the S3 lock headers of a HEAD or GET reply (replacing any).
pub fn set_response_headers(headers: &mut HeaderMap, lock: &ObjectLock) {
    for name in [MODE, RETAIN_UNTIL, LEGAL_HOLD] {
        headers.remove(name);
    }
    if let Some(r) = lock.retention {
        insert(headers, MODE, r.mode.as_s3());
        insert(headers, RETAIN_UNTIL, &format_date(r.until));
    }
    insert(headers, LEGAL_HOLD, lock.legal_hold.as_s3());
}

fn lock_from(headers: &HeaderMap, mode: &str, until: &str, hold: &str) -> Option<ObjectLock> {
    let get = |n: &str| headers.get(n).map(|v| v.to_str().ok().map(str::trim));
    let retention = match (get(mode), get(until)) {
        (None, None) => None,
        (Some(Some(m)), Some(Some(u))) => Some(Retention {
            mode: RetentionMode::from_s3(m)?,
            until: parse_date(u)?,
        }),
        _ => return None,
    };
    let legal_hold = match get(hold) {
        None => LegalHold::Off,
        Some(h) => LegalHold::from_s3(h?)?,
    };
    Some(ObjectLock {
        retention,
        legal_hold,
    })
}

/// The lock a backend reply reports for a version: native lock headers and the reserved
/// metadata, the stricter of both. `None` when a value is there but unreadable.
#[must_use]
pub fn from_backend(headers: &HeaderMap) -> Option<ObjectLock> {
    let native = lock_from(headers, MODE, RETAIN_UNTIL, LEGAL_HOLD)?;
    let meta = lock_from(headers, META_MODE, META_RETAIN_UNTIL, META_LEGAL_HOLD)?;
    Some(native.strictest(meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    http::HeaderName::from_static(k),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn requested_lock_is_validated_as_aws_does() {
        assert_eq!(requested(&h(&[])).expect("none"), None);
        let ok = requested(&h(&[
            (MODE, "COMPLIANCE"),
            (RETAIN_UNTIL, "2030-01-01T00:00:00Z"),
            (LEGAL_HOLD, "ON"),
        ]))
        .expect("valid")
        .expect("some");
        assert_eq!(ok.legal_hold, LegalHold::On);
        assert_eq!(
            ok.retention.map(|r| r.mode),
            Some(RetentionMode::Compliance)
        );
        for bad in [
            h(&[(MODE, "COMPLIANCE")]),
            h(&[(RETAIN_UNTIL, "2030-01-01T00:00:00Z")]),
            h(&[(MODE, "FOREVER"), (RETAIN_UNTIL, "2030-01-01T00:00:00Z")]),
            h(&[(MODE, "GOVERNANCE"), (RETAIN_UNTIL, "next year")]),
            h(&[(LEGAL_HOLD, "MAYBE")]),
        ] {
            assert!(matches!(
                requested(&bad),
                Err(GatewayError::InvalidArgument(_))
            ));
        }
    }

    #[test]
    fn metadata_round_trips_and_garbage_is_unknown() {
        let lock = ObjectLock {
            retention: Some(Retention {
                mode: RetentionMode::Governance,
                until: parse_date("2031-02-03T04:05:06.789Z").expect("date"),
            }),
            legal_hold: LegalHold::On,
        };
        let mut headers = HeaderMap::new();
        set_metadata(&mut headers, &lock);
        assert_eq!(from_backend(&headers), Some(lock));
        assert_eq!(from_backend(&HeaderMap::new()), Some(ObjectLock::default()));
        assert_eq!(from_backend(&h(&[(META_MODE, "GOVERNANCE")])), None);
        assert_eq!(
            from_backend(&h(&[
                (META_MODE, "X"),
                (META_RETAIN_UNTIL, "2030-01-01T00:00:00Z")
            ])),
            None
        );
    }

    #[test]
    fn checksum_may_be_md5_a_header_or_a_trailer() {
        assert!(!has_checksum(&h(&[])));
        assert!(has_checksum(&h(&[("content-md5", "x")])));
        assert!(has_checksum(&h(&[("x-amz-checksum-crc32", "x")])));
        assert!(has_checksum(&h(&[(
            "x-amz-trailer",
            "x-amz-checksum-crc32"
        )])));
    }
}
