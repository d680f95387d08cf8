//! `wormgate index verify`: compares the lock index with the backend and lists every
//! difference, changing nothing.
//!
//! The backend is read as `index rebuild` reads it (every bucket, every key or version, a HEAD
//! for each lock). What each difference means:
//!
//! - `lost`: the index holds an active lock on a version the backend no longer has. The data a
//!   lock promised is gone: the one finding that must never happen.
//! - `unindexed`: the backend carries a lock the index does not know. The gateway still
//!   enforces it (a miss is looked up on the backend), but the index is incomplete.
//! - `index-weaker`: the index's lock is weaker than the one on the backend.
//! - `index-stricter`: the index's lock is stricter than the backend's copy (expected for
//!   extensions in the `bucket-retention` profile, whose objects cannot be rewritten). Lose the
//!   index and a rebuild gives the weaker lock.
//! - `pending`: a write whose outcome the gateway never saw (a crash, an outage); it stays
//!   enforced, too strict rather than missing. `object present` tells whether it reached the
//!   backend.

use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Utc};
use policy::index::Scan;
use policy::lock::{ObjectLock, ObjectRef};

use crate::enforce::Gateway;
use crate::error::GatewayError;

/// One difference between the index and the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: FindingKind,
    pub object: ObjectRef,
    pub index: Option<ObjectLock>,
    pub backend: Option<ObjectLock>,
    /// For `pending`: whether the backend has the object.
    pub present: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingKind {
    Lost,
    Unindexed,
    IndexWeaker,
    IndexStricter,
    Pending,
}

impl FindingKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lost => "lost",
            Self::Unindexed => "unindexed",
            Self::IndexWeaker => "index-weaker",
            Self::IndexStricter => "index-stricter",
            Self::Pending => "pending",
        }
    }

    /// Which side holds the stricter protection, when the two disagree.
    #[must_use]
    pub fn stricter_side(self) -> Option<&'static str> {
        match self {
            Self::Lost | Self::IndexStricter => Some("index"),
            Self::Unindexed | Self::IndexWeaker => Some("backend"),
            Self::Pending => None,
        }
    }

    /// Whether the finding means a lock is, or could be, weaker than promised.
    #[must_use]
    pub fn is_loss(self) -> bool {
        matches!(self, Self::Lost | Self::Unindexed | Self::IndexWeaker)
    }
}

/// What a verify found.
#[derive(Debug, Default, Clone)]
pub struct VerifyReport {
    pub buckets: usize,
    /// Versions on the backend.
    pub versions: usize,
    /// Versions on the backend whose lock the index holds alike.
    pub agree: usize,
    /// Versions whose lock the backend would not tell.
    pub unreadable: usize,
    pub findings: Vec<Finding>,
}

impl VerifyReport {
    /// How many findings of `kind`.
    #[must_use]
    pub fn count(&self, kind: FindingKind) -> usize {
        self.findings.iter().filter(|f| f.kind == kind).count()
    }

    /// Whether the index and the backend disagree about any version's protection, either way
    /// (a pending write is not a disagreement: its outcome is unknown).
    #[must_use]
    pub fn disagrees(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.kind.stricter_side().is_some())
    }

    /// The report as `wormgate index verify` prints it: a line per finding, naming the stricter
    /// side, then the counts.
    #[must_use]
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        for f in &self.findings {
            let o = &f.object;
            let _ = writeln!(
                out,
                "{:<15} {}/{}{} index: {} backend: {}{}{}",
                f.kind.as_str(),
                o.bucket,
                o.key,
                o.version_id
                    .as_deref()
                    .map_or_else(String::new, |v| format!(" (version {v})")),
                show(f.index),
                show(f.backend),
                match (f.kind, f.present) {
                    (FindingKind::Pending, Some(true)) => " object present",
                    (FindingKind::Pending, _) => {
                        " object absent (the write never reached the backend)"
                    }
                    _ => "",
                },
                f.kind
                    .stricter_side()
                    .map_or_else(String::new, |side| format!(" stricter: {side}"))
            );
        }
        let counts: Vec<String> = [
            FindingKind::Lost,
            FindingKind::Unindexed,
            FindingKind::IndexWeaker,
            FindingKind::IndexStricter,
            FindingKind::Pending,
        ]
        .iter()
        .map(|k| format!("{} {}", self.count(*k), k.as_str()))
        .collect();
        let _ = writeln!(
            out,
            "verified {} buckets, {} versions: {} agree, {} unreadable, {}",
            self.buckets,
            self.versions,
            self.agree,
            self.unreadable,
            counts.join(", ")
        );
        out
    }

    /// Whether any finding means a lock is weaker than promised.
    #[must_use]
    pub fn has_loss(&self) -> bool {
        self.findings.iter().any(|f| f.kind.is_loss())
    }
}

/// A lock in a verify line: `COMPLIANCE until …`, `legal hold`, `none`, or `-` when unknown.
fn show(lock: Option<ObjectLock>) -> String {
    let Some(l) = lock else {
        return "-".to_owned();
    };
    let mut parts = Vec::new();
    if let Some(r) = l.retention {
        parts.push(format!(
            "{} until {}",
            r.mode.as_s3(),
            r.until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }
    if l.legal_hold == policy::lock::LegalHold::On {
        parts.push("legal hold".to_owned());
    }
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(" + ")
    }
}

/// Dates a second apart are the same date (headers carry whole seconds or milliseconds).
fn same(a: ObjectLock, b: ObjectLock) -> bool {
    let close = |x: Option<DateTime<Utc>>, y: Option<DateTime<Utc>>| match (x, y) {
        (Some(x), Some(y)) => (x - y).abs() < TimeDelta::seconds(1),
        (None, None) => true,
        _ => false,
    };
    a.legal_hold == b.legal_hold
        && a.retention.map(|r| r.mode) == b.retention.map(|r| r.mode)
        && close(a.retention.map(|r| r.until), b.retention.map(|r| r.until))
}

impl Gateway {
    /// Compares the index with the backend; writes nothing.
    ///
    /// # Errors
    /// The backend cannot be listed, or the index cannot be read.
    pub async fn verify_index(&self) -> Result<VerifyReport, GatewayError> {
        let mut report = VerifyReport::default();
        let now = self.locks.now();
        let index = &self.locks.index;
        let mut on_backend: HashSet<ObjectRef> = HashSet::new();
        let mut keys: HashSet<(String, String)> = HashSet::new();
        for bucket in self.bucket_names().await? {
            report.buckets += 1;
            let profile = self.locks.profile_of(&bucket);
            for (key, version_id) in self.versions_of(&bucket, profile).await? {
                report.versions += 1;
                let object = ObjectRef::new(&bucket, &key, version_id.as_deref());
                on_backend.insert(object.clone());
                keys.insert((bucket.clone(), key.clone()));
                let Some(backend) = self.head_lock(&object).await? else {
                    tracing::warn!(%bucket, %key, "lock state unreadable");
                    report.unreadable += 1;
                    continue;
                };
                let indexed = index.get(&object)?.map(|r| r.lock);
                let kind = match indexed {
                    None if backend.is_empty() => None,
                    None => Some(FindingKind::Unindexed),
                    Some(i) if same(i, backend) => None,
                    Some(i) if same(i.strictest(backend), i) => Some(FindingKind::IndexStricter),
                    Some(_) => Some(FindingKind::IndexWeaker),
                };
                match kind {
                    None => report.agree += 1,
                    Some(kind) => report.findings.push(Finding {
                        kind,
                        object,
                        index: indexed,
                        backend: Some(backend),
                        present: Some(true),
                    }),
                }
            }
        }
        // Index records with no version behind them.
        let mut after: Option<ObjectRef> = None;
        loop {
            let page = index.scan(&Scan {
                bucket: None,
                prefix: "",
                after: after.as_ref(),
                limit: crate::ops::audit::PAGE,
            })?;
            let Some(last) = page.last() else {
                break;
            };
            after = Some(last.object.clone());
            for record in page {
                if !on_backend.contains(&record.object) && record.lock.protects_at(now) {
                    report.findings.push(Finding {
                        kind: FindingKind::Lost,
                        object: record.object,
                        index: Some(record.lock),
                        backend: None,
                        present: Some(false),
                    });
                }
            }
        }
        for record in index.pending()? {
            let present = on_backend.contains(&record.object)
                || keys.contains(&(record.object.bucket.clone(), record.object.key.clone()));
            report.findings.push(Finding {
                kind: FindingKind::Pending,
                object: record.object,
                index: Some(record.lock),
                backend: None,
                present: Some(present),
            });
        }
        Ok(report)
    }
}
