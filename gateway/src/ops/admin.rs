//! The admin listener: health, readiness, metrics and the retention audit, on an address of its
//! own. Every route but `/healthz` and `/readyz` needs `Authorization: Bearer <token>`;
//! without it, or with another token, the answer is 401.
//!
//! - `GET /healthz`: the process answers.
//! - `GET /readyz`: the index takes a durable write, the backend answers, and no OSS WORM
//!   policy of a `bucket-retention` bucket is missing or about to lapse (an InProgress policy
//!   lapsing within `LAPSE_WARNING`). JSON; 200 or 503. Without the token (a readiness probe
//!   that must not carry a secret), only the status and `{"ready": …}`, from checks made at
//!   most every `PUBLIC_READY_EVERY`; with it, every check and its detail.
//! - `GET /metrics`: Prometheus (OpenMetrics text).
//! - `GET /audit/locks`: one row per locked version (see `audit`). Filters `bucket`, `prefix`,
//!   `expiring_before` (RFC 3339); `format=jsonl` (default) or `csv`. Without `limit` the whole
//!   report is streamed from the index, a page at a time (memory stays flat whatever its size);
//!   with `limit` (at most `MAX_LIMIT`) one page is answered, and `x-wormgate-next-cursor`
//!   gives the `cursor` of the next one.
//! - `GET /audit/gaps`: the same, only rows whose wanted protection outlives the backend's.
//! - `GET /audit/summary`: per bucket, JSON.
//! - `GET /audit/events`: the decision log, denials first, JSON lines (`limit`, default 1000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use policy::index::{LockIndex, LockRecord};
use policy::lock::{BackendRetention, Profile};
use serde::Serialize;

use crate::backend::ReadMethod;
use crate::config::Secret;
use crate::enforce::Gateway;
use crate::ops::audit::{self, Context, Cursor, Filter, Row};
use crate::s3::target::{Query, Target};

/// The most rows one page may ask for.
pub const MAX_LIMIT: usize = 10_000;
/// An InProgress OSS policy lapsing sooner than this makes the gateway not ready.
pub const LAPSE_WARNING: TimeDelta = TimeDelta::hours(6);
/// How old the locked-version gauges may be when `/metrics` is scraped.
const GAUGES_MAX_AGE: Duration = Duration::from_secs(60);

pub(crate) type AdminBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// The admin service. It holds the gateway weakly: once the S3 listener has stopped, the index
/// is closed and the admin answers 503, instead of keeping either alive.
#[derive(Clone)]
pub struct Admin {
    gateway: std::sync::Weak<Gateway>,
    token: Secret,
    gauges_at: Arc<std::sync::Mutex<Option<Instant>>>,
    /// The last answer `/readyz` gave without the token, and when.
    public_ready: Arc<std::sync::Mutex<Option<(Instant, bool)>>>,
}

/// How long an answer of `/readyz` without the token stands: a caller without the token does
/// not make the index take a durable write more often than this.
pub const PUBLIC_READY_EVERY: Duration = Duration::from_secs(2);

fn full(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<AdminBody> {
    let mut r = Response::new(Full::new(body.into()).map_err(|e| match e {}).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    r
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<AdminBody> {
    full(status, "text/plain; charset=utf-8", body)
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<AdminBody> {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    full(status, "application/json", body)
}

/// Compares without leaking where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Serialize)]
struct Check {
    name: String,
    ok: bool,
    detail: String,
}

impl Admin {
    pub(crate) fn new(gateway: &Arc<Gateway>, token: Secret) -> Self {
        Self {
            gateway: Arc::downgrade(gateway),
            token,
            gauges_at: Arc::new(std::sync::Mutex::new(None)),
            public_ready: Arc::new(std::sync::Mutex::new(None)),
        }
    }

    /// Answers one request of the admin listener.
    pub(crate) async fn handle(&self, req: Request<Incoming>) -> Response<AdminBody> {
        let path = req.uri().path().to_owned();
        if req.method() != Method::GET {
            return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
        }
        if path == "/healthz" {
            return text(StatusCode::OK, "ok\n");
        }
        let bearer = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let authorized =
            bearer.is_some_and(|t| same(t.trim().as_bytes(), self.token.expose().as_bytes()));
        if path == "/readyz" && !authorized {
            return self.public_readyz().await;
        }
        if !authorized {
            let mut r = text(
                StatusCode::UNAUTHORIZED,
                "a valid bearer token is required\n",
            );
            r.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
            return r;
        }
        let Some(gateway) = self.gateway.upgrade() else {
            return text(StatusCode::SERVICE_UNAVAILABLE, "the gateway is stopping\n");
        };
        let query = Query::parse(req.uri().query().unwrap_or(""));
        match path.as_str() {
            "/readyz" => self.readyz(&gateway).await,
            "/metrics" => self.metrics(&gateway).await,
            "/audit/locks" => locks(&gateway, &query, false).await,
            "/audit/gaps" => locks(&gateway, &query, true).await,
            "/audit/summary" => summary(&gateway).await,
            "/audit/events" => {
                let limit = query
                    .get("limit")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(1000);
                let lines: String = gateway
                    .telemetry
                    .events(limit)
                    .iter()
                    .map(|e| serde_json::to_string(e).unwrap_or_default() + "\n")
                    .collect();
                full(StatusCode::OK, "application/x-ndjson", lines)
            }
            _ => text(StatusCode::NOT_FOUND, "no such route\n"),
        }
    }

    /// `/readyz` for a caller without the token: whether the gateway is ready, and nothing
    /// else (readiness is no secret; the checks' details may be).
    async fn public_readyz(&self) -> Response<AdminBody> {
        let cached = self
            .public_ready
            .lock()
            .ok()
            .and_then(|r| *r)
            .filter(|(at, _)| at.elapsed() < PUBLIC_READY_EVERY)
            .map(|(_, ready)| ready);
        let ready = match cached {
            Some(ready) => ready,
            None => {
                let ready = match self.gateway.upgrade() {
                    Some(gateway) => self.readyz(&gateway).await.status() == StatusCode::OK,
                    None => false,
                };
                if let Ok(mut r) = self.public_ready.lock() {
                    *r = Some((Instant::now(), ready));
                }
                ready
            }
        };
        #[derive(Serialize)]
        struct Ready {
            ready: bool,
        }
        json(
            if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            },
            &Ready { ready },
        )
    }

    async fn readyz(&self, gw: &Arc<Gateway>) -> Response<AdminBody> {
        let mut checks = Vec::new();
        // The index takes a durable write.
        let probe = LockRecord::new(
            policy::lock::ObjectRef::new("\u{0}readyz", "\u{0}readyz", None),
            policy::lock::ObjectLock::default(),
            policy::index::LockSource::Header,
            gw.locks.now(),
        );
        let index = Arc::clone(&gw.locks.index);
        let written = tokio::task::spawn_blocking(move || {
            index.put_upload("\u{0}readyz", &probe)?;
            index.remove_upload("\u{0}readyz")
        })
        .await;
        checks.push(match written {
            Ok(Ok(())) => Check {
                name: "index".into(),
                ok: true,
                detail: "writable".into(),
            },
            Ok(Err(e)) => Check {
                name: "index".into(),
                ok: false,
                detail: e.to_string(),
            },
            Err(e) => Check {
                name: "index".into(),
                ok: false,
                detail: e.to_string(),
            },
        });
        // The backend answers (any HTTP answer will do).
        let reached = gw
            .read(
                ReadMethod::Get,
                &Target {
                    bucket: None,
                    key: None,
                },
                None,
                http::HeaderMap::new(),
            )
            .await
            .map(|r| r.status());
        checks.push(match reached {
            Ok(status) => Check {
                name: "backend".into(),
                ok: true,
                detail: format!("answered {status}"),
            },
            Err(e) => Check {
                name: "backend".into(),
                ok: false,
                detail: e.to_string(),
            },
        });
        // Every bucket-retention bucket still has a policy that will not lapse soon.
        let now = gw.locks.now();
        for (bucket, profile) in &gw.locks.settings().bucket_profiles {
            if *profile != Profile::BucketRetention {
                continue;
            }
            let name = format!("worm:{bucket}");
            checks.push(match gw.refresh_worm(bucket).await {
                Ok(None) => Check {
                    name,
                    ok: false,
                    detail: "OSS reports no WORM policy".into(),
                },
                Ok(Some(w)) => {
                    let r = w.retention();
                    match r.lapses_at {
                        Some(at) if at - now < LAPSE_WARNING => Check {
                            name,
                            ok: false,
                            detail: format!(
                                "InProgress policy lapses at {at}: lock it (CompleteBucketWorm)"
                            ),
                        },
                        _ => Check {
                            name,
                            ok: true,
                            detail: format!("{} {} days", w.state.as_str(), w.period_days),
                        },
                    }
                }
                Err(e) => Check {
                    name,
                    ok: false,
                    detail: e.to_string(),
                },
            });
        }
        let ready = checks.iter().all(|c| c.ok);
        #[derive(Serialize)]
        struct Ready {
            ready: bool,
            checks: Vec<Check>,
        }
        json(
            if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            },
            &Ready { ready, checks },
        )
    }

    async fn metrics(&self, gateway: &Arc<Gateway>) -> Response<AdminBody> {
        let stale = self
            .gauges_at
            .lock()
            .map(|at| at.is_none_or(|t| t.elapsed() > GAUGES_MAX_AGE))
            .unwrap_or(true);
        if stale {
            let gw = Arc::clone(gateway);
            let summary = tokio::task::spawn_blocking(move || {
                let (profile_of, backend_of) = lookups(&gw);
                let cx = Context {
                    now: gw.locks.now(),
                    profile_of: &profile_of,
                    backend_of: &backend_of,
                };
                audit::summary(gw.locks.index.as_ref(), &cx, &[])
            })
            .await;
            if let Ok(Ok(buckets)) = summary {
                let sum = |f: fn(&audit::BucketSummary) -> u64| {
                    i64::try_from(buckets.iter().map(f).sum::<u64>()).unwrap_or(i64::MAX)
                };
                let t = &gateway.telemetry;
                t.locked_versions.set(sum(|b| b.locked_versions));
                t.expiring_7d.set(sum(|b| b.expiring_within_7_days));
                t.gaps.set(sum(|b| b.gaps));
                if let Ok(mut at) = self.gauges_at.lock() {
                    *at = Some(Instant::now());
                }
            }
        }
        full(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            gateway.telemetry.encode(),
        )
    }
}

async fn summary(gateway: &Arc<Gateway>) -> Response<AdminBody> {
    let gw = Arc::clone(gateway);
    let result = tokio::task::spawn_blocking(move || {
        let (profile_of, backend_of) = lookups(&gw);
        let cx = Context {
            now: gw.locks.now(),
            profile_of: &profile_of,
            backend_of: &backend_of,
        };
        let configured: Vec<String> = gw
            .locks
            .settings()
            .bucket_profiles
            .keys()
            .cloned()
            .collect();
        audit::summary(gw.locks.index.as_ref(), &cx, &configured)
    })
    .await;
    match result {
        Ok(Ok(buckets)) => json(StatusCode::OK, &buckets),
        Ok(Err(e)) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

async fn locks(gateway: &Arc<Gateway>, query: &Query, gaps_only: bool) -> Response<AdminBody> {
    let expiring_before = match query.get("expiring_before") {
        None => None,
        Some(v) => match DateTime::parse_from_rfc3339(v) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    "expiring_before must be an RFC 3339 date, e.g. 2030-01-01T00:00:00Z\n",
                );
            }
        },
    };
    let csv = match query.get("format") {
        None | Some("jsonl") => false,
        Some("csv") => true,
        Some(_) => return text(StatusCode::BAD_REQUEST, "format is jsonl or csv\n"),
    };
    let cursor = match query.get("cursor") {
        None | Some("") => None,
        Some(c) => match Cursor::decode(c) {
            Some(c) => Some(c),
            None => return text(StatusCode::BAD_REQUEST, "unreadable cursor\n"),
        },
    };
    let limit = match query.get("limit").map(str::parse::<usize>) {
        None => None,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => Some(n),
        Some(_) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("limit must be 1..={MAX_LIMIT}\n"),
            );
        }
    };
    let filter = Filter {
        bucket: query
            .get("bucket")
            .filter(|b| !b.is_empty())
            .map(str::to_owned),
        prefix: query.get("prefix").unwrap_or("").to_owned(),
        expiring_before,
        gaps_only,
    };
    let content_type = if csv {
        "text/csv"
    } else {
        "application/x-ndjson"
    };
    let render = move |rows: &[Row], first: bool| -> Bytes {
        let mut out = String::new();
        if csv && first {
            out.push_str(Row::CSV_HEADER);
        }
        for r in rows {
            out.push_str(&if csv { r.csv_line() } else { r.json_line() });
        }
        Bytes::from(out)
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
    let gw = Arc::clone(gateway);
    let (head_tx, head_rx) = tokio::sync::oneshot::channel::<Result<Option<String>, String>>();
    let mut head_tx = Some(head_tx);
    tokio::task::spawn_blocking(move || {
        let (profile_of, backend_of) = lookups(&gw);
        let index: &dyn LockIndex = gw.locks.index.as_ref();
        let mut cursor = cursor;
        let mut first = true;
        loop {
            let now = gw.locks.now();
            let cx = Context {
                now,
                profile_of: &profile_of,
                backend_of: &backend_of,
            };
            let step = limit.unwrap_or(audit::PAGE);
            let (rows, next) = match audit::page(index, &filter, &cx, cursor, step) {
                Ok(p) => p,
                Err(e) => {
                    if let Some(head) = head_tx.take() {
                        let _ = head.send(Err(e.to_string()));
                    } else {
                        // Cut the stream: a truncated export must not look complete.
                        let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                    }
                    return;
                }
            };
            if let Some(head) = head_tx.take() {
                let header = if limit.is_some() {
                    next.as_ref().map(Cursor::encode)
                } else {
                    None
                };
                if head.send(Ok(header)).is_err() {
                    return;
                }
            }
            let chunk = render(&rows, first);
            first = false;
            if !chunk.is_empty() && tx.blocking_send(Ok(Frame::data(chunk))).is_err() {
                return;
            }
            match next {
                Some(n) if limit.is_none() => cursor = Some(n),
                _ => return,
            }
        }
    });
    match head_rx.await {
        Ok(Ok(next)) => {
            let stream = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            });
            let body = StreamBody::new(stream)
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })
                .boxed();
            let mut r = Response::new(body);
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static(content_type),
            );
            if let Some(next) = next.and_then(|n| HeaderValue::from_str(&n).ok()) {
                r.headers_mut().insert("x-wormgate-next-cursor", next);
            }
            r
        }
        Ok(Err(e)) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("lock index: {e}\n"),
        ),
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "audit task ended\n"),
    }
}

/// The profile and the backend retention of a bucket, as the audit needs them: what OSS last
/// said, else what the index recorded.
fn lookups(
    gw: &Arc<Gateway>,
) -> (
    impl Fn(&str) -> Profile + use<>,
    impl Fn(&str) -> Option<BackendRetention> + use<>,
) {
    let a = Arc::clone(gw);
    let b = Arc::clone(gw);
    (
        move |bucket: &str| a.locks.profile_of(bucket),
        move |bucket: &str| {
            if let Some(w) = b.locks.worms.get(bucket) {
                return Some(w.retention());
            }
            b.locks
                .index
                .bucket(bucket)
                .ok()
                .flatten()
                .and_then(|r| r.backend)
        },
    )
}
