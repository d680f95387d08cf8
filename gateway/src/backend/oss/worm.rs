//! A client for OSS BucketWorm, the bucket-level retention of Alibaba OSS.
//!
//! The API (OSS's own, not S3's): `POST /?worm` with `InitiateWormConfiguration` starts a policy
//! and answers its id in `x-oss-worm-id`; `POST /?wormId=ID` locks it; `POST
//! /?wormExtend&wormId=ID` with `ExtendWormConfiguration` raises a locked policy's period (never
//! lowers it); `GET /?worm` answers `WormConfiguration` (WormId, State InProgress|Locked,
//! RetentionPeriodInDays, CreationDate), or 404 `NoSuchWORMConfiguration`; `DELETE /?worm`
//! aborts a policy still InProgress. An InProgress policy already protects, and lapses 24 hours
//! after its creation unless it is locked. Requests go to `<bucket>.<endpoint>` and are signed
//! with OSS's V4 signature.
//!
//! What must never be here: a call that weakens a policy. The client starts, locks and raises
//! policies only (there is no abort), and it raises one only for a write the policy allowed.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::BodyExt;
use policy::lock::BackendRetention;

use super::sign::{self, Signable, SigningScope, UNSIGNED_PAYLOAD};
use crate::backend::{BackendSetupError, HttpClient, Permit, ProxyBody, error_chain, http_client};
use crate::config::{OssSettings, Secret};
use crate::s3::lock_xml;

pub use crate::config::OSS_MAX_PERIOD_DAYS as MAX_PERIOD_DAYS;
/// An InProgress policy lapses this long after its creation unless it is locked.
pub const IN_PROGRESS_LIFETIME: TimeDelta = TimeDelta::hours(24);

/// A policy's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WormState {
    InProgress,
    Locked,
}

impl WormState {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "InProgress",
            Self::Locked => "Locked",
        }
    }
}

/// A bucket's WORM policy as `GET /?worm` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketWorm {
    pub id: String,
    pub state: WormState,
    pub period_days: u32,
    pub created: Option<DateTime<Utc>>,
}

impl BucketWorm {
    /// The policy as the rules and the audit see it.
    #[must_use]
    pub fn retention(&self) -> BackendRetention {
        BackendRetention {
            period_days: self.period_days,
            locked: self.state == WormState::Locked,
            lapses_at: match self.state {
                WormState::Locked => None,
                // An unlocked policy of unknown age is treated as lapsing now: never trusted.
                WormState::InProgress => Some(
                    self.created
                        .map_or(DateTime::<Utc>::MIN_UTC, |c| c + IN_PROGRESS_LIFETIME),
                ),
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WormError {
    #[error("OSS is unreachable: {0}")]
    Unavailable(String),
    #[error("OSS refused: {status} {code}: {message}")]
    Refused {
        status: StatusCode,
        code: String,
        message: String,
    },
    #[error("OSS answered something unreadable: {0}")]
    Unreadable(String),
}

/// Signs and sends BucketWorm calls.
pub struct WormClient {
    client: HttpClient,
    endpoint: Uri,
    region: String,
    access_key: String,
    secret: Secret,
    timeout: Duration,
}

/// The text of the first `<name>` element of a small XML document.
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(xml[start..end].trim())
}

/// OSS writes `CreationDate` as ISO 8601, with or without a zone and fraction.
fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .map(|n| n.and_utc())
}

/// Parses a `WormConfiguration` document.
///
/// # Errors
/// A field is missing or malformed.
pub fn parse_configuration(xml: &str) -> Result<BucketWorm, WormError> {
    let bad = |what: &str| WormError::Unreadable(format!("WormConfiguration: {what}"));
    let id = element(xml, "WormId").ok_or_else(|| bad("no WormId"))?;
    let state = match element(xml, "State") {
        Some("Locked") => WormState::Locked,
        Some("InProgress") => WormState::InProgress,
        _ => return Err(bad("State is neither InProgress nor Locked")),
    };
    let period_days = element(xml, "RetentionPeriodInDays")
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| bad("RetentionPeriodInDays"))?;
    let created = element(xml, "CreationDate").and_then(parse_date);
    Ok(BucketWorm {
        id: id.to_owned(),
        state,
        period_days,
        created,
    })
}

fn period_body(root: &str, days: u32) -> String {
    format!("<{root}><RetentionPeriodInDays>{days}</RetentionPeriodInDays></{root}>")
}

impl WormClient {
    /// # Errors
    /// The TLS client cannot be set up.
    pub fn new(settings: &OssSettings, timeout: Duration) -> Result<Self, BackendSetupError> {
        Ok(Self {
            client: http_client(None, 5)?,
            endpoint: settings.endpoint.clone(),
            region: settings.region.clone(),
            access_key: settings.access_key.clone(),
            secret: settings.secret_key.clone(),
            timeout,
        })
    }

    /// `GET /?worm`: the bucket's policy, or `None` when it has none.
    ///
    /// # Errors
    /// OSS cannot be reached, refuses, or answers something unreadable.
    pub async fn get(&self, bucket: &str) -> Result<Option<BucketWorm>, WormError> {
        let (status, _, body) = self
            .call(Method::GET, bucket, &[("worm", None)], None)
            .await?;
        let text = String::from_utf8_lossy(&body);
        if status == StatusCode::NOT_FOUND
            && element(&text, "Code") == Some("NoSuchWORMConfiguration")
        {
            return Ok(None);
        }
        refused(status, &text)?;
        parse_configuration(&text).map(Some)
    }

    /// `POST /?worm`: starts a policy of `days`; answers its id.
    ///
    /// # Errors
    /// As `get`.
    pub async fn initiate(&self, bucket: &str, days: u32) -> Result<String, WormError> {
        let body = period_body("InitiateWormConfiguration", days);
        let (status, headers, reply) = self
            .call(Method::POST, bucket, &[("worm", None)], Some(body))
            .await?;
        refused(status, &String::from_utf8_lossy(&reply))?;
        headers
            .get("x-oss-worm-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| WormError::Unreadable("no x-oss-worm-id".into()))
    }

    /// `POST /?wormId=ID`: locks the policy for good.
    ///
    /// # Errors
    /// As `get`.
    pub async fn complete(&self, bucket: &str, id: &str) -> Result<(), WormError> {
        let (status, _, reply) = self
            .call(Method::POST, bucket, &[("wormId", Some(id))], None)
            .await?;
        refused(status, &String::from_utf8_lossy(&reply))
    }

    /// `POST /?wormExtend&wormId=ID`: raises a locked policy's period to `days`, for a write the
    /// policy allowed (its `Permit`).
    ///
    /// # Errors
    /// As `get`; OSS refuses a period that is not longer.
    pub async fn extend(
        &self,
        bucket: &str,
        id: &str,
        days: u32,
        _permit: &Permit,
    ) -> Result<(), WormError> {
        let body = period_body("ExtendWormConfiguration", days);
        let (status, _, reply) = self
            .call(
                Method::POST,
                bucket,
                &[("wormExtend", None), ("wormId", Some(id))],
                Some(body),
            )
            .await?;
        refused(status, &String::from_utf8_lossy(&reply))
    }

    async fn call(
        &self,
        method: Method,
        bucket: &str,
        query: &[(&str, Option<&str>)],
        body: Option<String>,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), WormError> {
        let authority = self
            .endpoint
            .authority()
            .ok_or_else(|| WormError::Unavailable("the OSS endpoint has no host".into()))?;
        let host = format!("{bucket}.{authority}");
        let query_string = query
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={}", crate::s3::target::encode_query_value(v)),
                None => (*k).to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&");
        let uri = Uri::builder()
            .scheme(self.endpoint.scheme_str().unwrap_or("https"))
            .authority(authority.as_str())
            .path_and_query(format!("/?{query_string}"))
            .build()
            .map_err(|e| WormError::Unavailable(format!("OSS URI: {e}")))?;
        let timestamp = Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let body = Bytes::from(body.unwrap_or_default());
        let content_md5 = (!body.is_empty()).then(|| {
            use base64::Engine as _;
            use md5::Digest as _;
            base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&body))
        });
        let mut headers: Vec<(&str, String)> = vec![
            ("host", host.clone()),
            ("x-oss-date", timestamp.clone()),
            ("x-oss-content-sha256", UNSIGNED_PAYLOAD.to_owned()),
            ("content-length", body.len().to_string()),
        ];
        if let Some(md5) = &content_md5 {
            headers.push(("content-md5", md5.clone()));
            headers.push(("content-type", "application/xml".to_owned()));
        }
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let authorization = sign::authorization(
            &Signable {
                method: method.as_str(),
                bucket: Some(bucket),
                key: None,
                query,
                headers: &pairs,
                additional: &["host"],
            },
            &SigningScope {
                access_key_id: &self.access_key,
                secret: self.secret.expose(),
                region: &self.region,
                timestamp: &timestamp,
            },
        );
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        let request = request
            .header(
                "authorization",
                HeaderValue::from_str(&authorization)
                    .map_err(|e| WormError::Unavailable(format!("authorization header: {e}")))?,
            )
            .body(
                http_body_util::Full::new(body)
                    .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { match e {} })
                    .boxed_unsync() as ProxyBody,
            )
            .map_err(|e| WormError::Unavailable(format!("OSS request: {e}")))?;
        let resp = match tokio::time::timeout(self.timeout, self.client.request(request)).await {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) => return Err(WormError::Unavailable(error_chain(&e))),
            Err(_) => {
                return Err(WormError::Unavailable(format!(
                    "no answer within {} s",
                    self.timeout.as_secs()
                )));
            }
        };
        let (parts, incoming) = resp.into_parts();
        let body = lock_xml::read_capped(s3s::Body::from(incoming), lock_xml::POLICY_BODY_CAP)
            .await
            .map_err(|e| WormError::Unavailable(format!("reading the answer: {e}")))?;
        Ok((parts.status, parts.headers, body))
    }
}

/// A non-2xx answer as an error carrying OSS's code and message.
fn refused(status: StatusCode, text: &str) -> Result<(), WormError> {
    if status.is_success() {
        return Ok(());
    }
    Err(WormError::Refused {
        status,
        code: element(text, "Code").unwrap_or("").to_owned(),
        message: element(text, "Message").unwrap_or("").to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_is_read_as_documented() {
        let w = parse_configuration(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<WormConfiguration>\n  \
             <WormId>1666E2CFB2B3418****</WormId>\n  <State>Locked</State>\n  \
             <RetentionPeriodInDays>1</RetentionPeriodInDays>\n  \
             <CreationDate>2020-10-15T15:50:32</CreationDate>\n</WormConfiguration>",
        )
        .expect("parses");
        assert_eq!(w.state, WormState::Locked);
        assert_eq!(w.period_days, 1);
        assert_eq!(w.created, "2020-10-15T15:50:32Z".parse().ok());
        assert_eq!(w.retention().lapses_at, None);
        assert!(parse_configuration("<WormConfiguration></WormConfiguration>").is_err());
    }

    #[test]
    fn an_unlocked_policy_lapses_a_day_after_creation() {
        let created: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().expect("date");
        let w = BucketWorm {
            id: "x".into(),
            state: WormState::InProgress,
            period_days: 14,
            created: Some(created),
        };
        let r = w.retention();
        assert_eq!(r.lapses_at, Some(created + TimeDelta::hours(24)));
        assert_eq!(
            r.floor(created, created + TimeDelta::hours(23)),
            Some(created + TimeDelta::days(14))
        );
        assert_eq!(r.floor(created, created + TimeDelta::hours(24)), None);
    }
}
