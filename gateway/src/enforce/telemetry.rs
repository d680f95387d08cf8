//! What the gateway counts and remembers for its operators: Prometheus metrics and the
//! decision log (`/audit/events`).
//!
//! The decision log keeps the latest 10,000 denials and, apart, the latest 10,000 allowed
//! mutating decisions, so a burst of ordinary writes never pushes a denial out. It lives in
//! memory; the `wormgate::audit` log target carries every denial for good.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Serialize;

/// How many decisions of each kind the log keeps.
pub const EVENTS_KEPT: usize = 10_000;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpStatus {
    op: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: String,
}

/// One decision.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub time: String,
    pub user: String,
    pub op: String,
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub decision: &'static str,
    pub reason: Option<String>,
}

/// The request being served, for the decision log.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub user: String,
    pub op: &'static str,
    pub bucket: Option<String>,
    pub key: Option<String>,
}

tokio::task_local! {
    /// Set around each request's handling.
    pub static CURRENT: RequestContext;
}

/// The gateway's metrics and decision log.
pub struct Telemetry {
    registry: Registry,
    requests: Family<OpStatus, Counter>,
    denials: Family<Reason, Counter>,
    bytes_in: Counter,
    bytes_out: Counter,
    backend_latency: Histogram,
    pub locked_versions: Gauge,
    pub expiring_7d: Gauge,
    pub gaps: Gauge,
    /// Expiry decisions refused because the backend's clock disagreed or could not be read.
    pub clock_refusals: Counter,
    /// The gateway's clock minus the backend's, at the latest check (seconds).
    pub clock_skew: Gauge,
    denied: Mutex<VecDeque<Event>>,
    allowed: Mutex<VecDeque<Event>>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("wormgate");
        let requests = Family::<OpStatus, Counter>::default();
        let denials = Family::<Reason, Counter>::default();
        let bytes_in = Counter::default();
        let bytes_out = Counter::default();
        let backend_latency = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let locked_versions = Gauge::default();
        let expiring_7d = Gauge::default();
        let gaps = Gauge::default();
        let clock_refusals = Counter::default();
        let clock_skew = Gauge::default();
        registry.register(
            "requests",
            "S3 requests by operation and status",
            requests.clone(),
        );
        registry.register("denials", "Refusals by reason", denials.clone());
        registry.register(
            "bytes_in",
            "Request body bytes accepted, as declared by their length",
            bytes_in.clone(),
        );
        registry.register(
            "bytes_out",
            "Response body bytes sent, as declared by their length",
            bytes_out.clone(),
        );
        registry.register(
            "backend_latency_seconds",
            "Time from sending a request to the backend to its response headers",
            backend_latency.clone(),
        );
        registry.register(
            "locked_versions",
            "Versions under an active retention or legal hold",
            locked_versions.clone(),
        );
        registry.register(
            "expiring_within_7_days",
            "Active retentions that end within 7 days",
            expiring_7d.clone(),
        );
        registry.register(
            "gaps",
            "Locked versions whose wanted protection outlives the backend's own",
            gaps.clone(),
        );
        registry.register(
            "clock_refusals",
            "Expiry decisions refused because the backend's clock disagreed with the gateway's or could not be read",
            clock_refusals.clone(),
        );
        registry.register(
            "clock_skew_seconds",
            "The gateway's clock minus the backend's Date, at the latest expiry check",
            clock_skew.clone(),
        );
        Self {
            registry,
            requests,
            denials,
            bytes_in,
            bytes_out,
            backend_latency,
            locked_versions,
            expiring_7d,
            gaps,
            clock_refusals,
            clock_skew,
            denied: Mutex::new(VecDeque::new()),
            allowed: Mutex::new(VecDeque::new()),
        }
    }

    pub fn request(&self, op: &str, status: u16, bytes_in: u64, bytes_out: u64) {
        self.requests
            .get_or_create(&OpStatus {
                op: op.to_owned(),
                status,
            })
            .inc();
        self.bytes_in.inc_by(bytes_in);
        self.bytes_out.inc_by(bytes_out);
    }

    pub fn backend_latency(&self, took: Duration) {
        self.backend_latency.observe(took.as_secs_f64());
    }

    /// Records a decision of the request being served, about `key` when given (a key of a
    /// batch) or else the request's own. `reason` is `None` for an allow.
    pub fn decision(&self, now: DateTime<Utc>, key: Option<&str>, reason: Option<String>) {
        let cx = CURRENT.try_with(Clone::clone).ok();
        let event = Event {
            time: now.to_rfc3339_opts(SecondsFormat::Millis, true),
            user: cx.as_ref().map(|c| c.user.clone()).unwrap_or_default(),
            op: cx.as_ref().map(|c| c.op.to_owned()).unwrap_or_default(),
            bucket: cx.as_ref().and_then(|c| c.bucket.clone()),
            key: key
                .map(str::to_owned)
                .or_else(|| cx.as_ref().and_then(|c| c.key.clone())),
            decision: if reason.is_some() {
                "denied"
            } else {
                "allowed"
            },
            reason: reason.clone(),
        };
        let log = match &reason {
            Some(r) => {
                self.denials
                    .get_or_create(&Reason { reason: r.clone() })
                    .inc();
                &self.denied
            }
            None => &self.allowed,
        };
        let mut log = log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if log.len() == EVENTS_KEPT {
            log.pop_front();
        }
        log.push_back(event);
    }

    /// The decision log: denials first, then allowed decisions, newest first in each.
    #[must_use]
    pub fn events(&self, limit: usize) -> Vec<Event> {
        let denied = self
            .denied
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let allowed = self
            .allowed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        denied
            .iter()
            .rev()
            .chain(allowed.iter().rev())
            .take(limit)
            .cloned()
            .collect()
    }

    /// The Prometheus text exposition.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

pub use crate::error::reason_label;
