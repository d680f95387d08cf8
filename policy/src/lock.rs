//! The vocabulary of object lock: what a version's protection is, and what a bucket promises.
//!
//! Plain values with no behaviour beyond comparing protections; the rules that use them live in
//! `rules`.

use chrono::{DateTime, Months, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// One object version. `version_id` is `None` for the only version of an object in a store
/// without versioning (S3 calls it the "null" version).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
}

impl ObjectRef {
    #[must_use]
    pub fn new(bucket: &str, key: &str, version_id: Option<&str>) -> Self {
        Self {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id: version_id.map(str::to_owned),
        }
    }
}

/// S3's two retention modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RetentionMode {
    /// Removable early by a user with the bypass permission who also asks for it.
    Governance,
    /// Removable by nobody before its date.
    Compliance,
}

impl RetentionMode {
    /// The name S3 uses in headers and XML.
    #[must_use]
    pub fn as_s3(self) -> &'static str {
        match self {
            Self::Governance => "GOVERNANCE",
            Self::Compliance => "COMPLIANCE",
        }
    }

    /// Parses S3's name; anything else is `None`.
    #[must_use]
    pub fn from_s3(s: &str) -> Option<Self> {
        match s {
            "GOVERNANCE" => Some(Self::Governance),
            "COMPLIANCE" => Some(Self::Compliance),
            _ => None,
        }
    }
}

/// A retention period on one version: protected while `now < until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub mode: RetentionMode,
    pub until: DateTime<Utc>,
}

impl Retention {
    /// Whether the retention still protects at `now`. At `now == until` it has ended.
    #[must_use]
    pub fn active_at(&self, now: DateTime<Utc>) -> bool {
        now < self.until
    }
}

/// A legal hold: independent of retention, no date, lifted only explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum LegalHold {
    #[default]
    Off,
    On,
}

impl LegalHold {
    #[must_use]
    pub fn as_s3(self) -> &'static str {
        match self {
            Self::Off => "OFF",
            Self::On => "ON",
        }
    }

    #[must_use]
    pub fn from_s3(s: &str) -> Option<Self> {
        match s {
            "ON" => Some(Self::On),
            "OFF" => Some(Self::Off),
            _ => None,
        }
    }
}

/// Everything that protects one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ObjectLock {
    pub retention: Option<Retention>,
    pub legal_hold: LegalHold,
}

impl ObjectLock {
    /// Whether anything protects the version at `now`.
    #[must_use]
    pub fn protects_at(&self, now: DateTime<Utc>) -> bool {
        self.legal_hold == LegalHold::On || self.retention.is_some_and(|r| r.active_at(now))
    }

    /// Whether the lock carries anything at all (an expired retention still counts: it is history
    /// the audit shows).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.retention.is_none() && self.legal_hold == LegalHold::Off
    }

    /// The stricter of two views of the same version: the later date, COMPLIANCE over GOVERNANCE,
    /// a hold if either has one. Used where two sources disagree (a pending write and the last
    /// committed one, the index and the backend): the gateway always believes the stricter.
    #[must_use]
    pub fn strictest(self, other: Self) -> Self {
        let retention = match (self.retention, other.retention) {
            (Some(a), Some(b)) => Some(Retention {
                mode: if a.mode == RetentionMode::Compliance || b.mode == RetentionMode::Compliance
                {
                    RetentionMode::Compliance
                } else {
                    RetentionMode::Governance
                },
                until: a.until.max(b.until),
            }),
            (a, b) => a.or(b),
        };
        let legal_hold = if self.legal_hold == LegalHold::On || other.legal_hold == LegalHold::On {
            LegalHold::On
        } else {
            LegalHold::Off
        };
        Self {
            retention,
            legal_hold,
        }
    }
}

/// A bucket's default retention period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Period {
    Days(u32),
    Years(u32),
}

impl Period {
    /// Largest `Days` S3 accepts.
    pub const MAX_DAYS: u32 = 36_500;
    /// Largest `Years` S3 accepts.
    pub const MAX_YEARS: u32 = 100;

    /// The end of the period started at `from`; `None` if it falls outside the calendar.
    #[must_use]
    pub fn end_from(self, from: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Days(d) => from.checked_add_signed(TimeDelta::days(i64::from(d))),
            Self::Years(y) => from.checked_add_months(Months::new(y.checked_mul(12)?)),
        }
    }
}

/// A bucket's default retention: applied to versions written without lock headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRetention {
    pub mode: RetentionMode,
    pub period: Period,
}

/// What a bucket promises about locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BucketLock {
    /// Object lock is enabled; once on it is never turned off.
    pub enabled: bool,
    pub default_retention: Option<DefaultRetention>,
}

/// A backend's own retention for a whole bucket (Alibaba OSS BucketWorm, GCS bucket lock): every
/// object is protected from its last modification for `period_days`, whatever the gateway says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendRetention {
    pub period_days: u32,
    /// Locked for good (it can only be extended). An unlocked policy already protects, but
    /// lapses at `lapses_at` unless it is locked.
    pub locked: bool,
    pub lapses_at: Option<DateTime<Utc>>,
}

impl BackendRetention {
    /// Until when the backend alone protects a version last modified at `since`; `None` once
    /// an unlocked policy has lapsed (or the date falls outside the calendar).
    #[must_use]
    pub fn floor(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.locked && self.lapses_at.is_some_and(|at| at <= now) {
            return None;
        }
        Period::Days(self.period_days).end_from(since)
    }

    /// The whole days a period must have so that a version last modified at `since` is
    /// protected by the backend until `until`.
    #[must_use]
    pub fn days_needed(since: DateTime<Utc>, until: DateTime<Utc>) -> i64 {
        let secs = (until - since).num_seconds().max(0);
        (secs + 86_399) / 86_400
    }
}

/// How the backend keeps a bucket's data, which decides what a delete or overwrite destroys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Versioning {
    /// One version per key: an overwrite or a delete destroys the data.
    Unversioned,
    /// Every write makes a version; a delete without a version id only adds a delete marker.
    Enabled,
    /// Versioning was on and is suspended: writes replace the null version.
    Suspended,
}

/// Who enforces the bucket's locks (see the design's profile table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Profile {
    /// The backend has no lock: the gateway alone enforces, and writes the lock as metadata.
    Gateway,
    /// The backend has S3 Object Lock: requests pass through and both enforce.
    Native,
    /// The backend has one retention period for the bucket; the gateway enforces each date.
    BucketRetention,
}

impl Profile {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::Native => "native",
            Self::BucketRetention => "bucket-retention",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "gateway" => Some(Self::Gateway),
            "native" => Some(Self::Native),
            "bucket-retention" => Some(Self::BucketRetention),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("test date")
    }

    #[test]
    fn retention_ends_exactly_at_its_date() {
        let r = Retention {
            mode: RetentionMode::Compliance,
            until: at("2030-01-01T00:00:00Z"),
        };
        assert!(r.active_at(at("2029-12-31T23:59:59.999Z")));
        assert!(!r.active_at(at("2030-01-01T00:00:00Z")));
    }

    #[test]
    fn strictest_takes_the_later_date_and_the_stronger_mode() {
        let a = ObjectLock {
            retention: Some(Retention {
                mode: RetentionMode::Compliance,
                until: at("2030-01-01T00:00:00Z"),
            }),
            legal_hold: LegalHold::Off,
        };
        let b = ObjectLock {
            retention: Some(Retention {
                mode: RetentionMode::Governance,
                until: at("2031-01-01T00:00:00Z"),
            }),
            legal_hold: LegalHold::On,
        };
        let s = a.strictest(b);
        assert_eq!(s.legal_hold, LegalHold::On);
        assert_eq!(
            s.retention,
            Some(Retention {
                mode: RetentionMode::Compliance,
                until: at("2031-01-01T00:00:00Z"),
            })
        );
        assert_eq!(s, b.strictest(a));
    }

    #[test]
    fn a_backend_period_covers_whole_days_and_ends_when_an_unlocked_policy_lapses() {
        let since = at("2026-01-01T00:00:00Z");
        assert_eq!(
            BackendRetention::days_needed(since, at("2026-01-31T00:00:00Z")),
            30
        );
        assert_eq!(
            BackendRetention::days_needed(since, at("2026-01-31T00:00:01Z")),
            31
        );
        assert_eq!(
            BackendRetention::days_needed(since, at("2025-12-31T00:00:00Z")),
            0
        );
        let locked = BackendRetention {
            period_days: 14,
            locked: true,
            lapses_at: None,
        };
        let far = at("2030-01-01T00:00:00Z");
        assert_eq!(locked.floor(since, far), Some(at("2026-01-15T00:00:00Z")));
        let unlocked = BackendRetention {
            locked: false,
            lapses_at: Some(at("2026-01-02T00:00:00Z")),
            ..locked
        };
        assert_eq!(
            unlocked.floor(since, at("2026-01-01T12:00:00Z")),
            Some(at("2026-01-15T00:00:00Z"))
        );
        assert_eq!(unlocked.floor(since, at("2026-01-02T00:00:00Z")), None);
    }

    #[test]
    fn years_follow_the_calendar() {
        assert_eq!(
            Period::Years(1).end_from(at("2024-02-29T12:00:00Z")),
            Some(at("2025-02-28T12:00:00Z"))
        );
        assert_eq!(
            Period::Days(2).end_from(at("2024-02-28T12:00:00Z")),
            Some(at("2024-03-01T12:00:00Z"))
        );
    }
}
