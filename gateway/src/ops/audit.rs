//! The retention audit: one row per locked version, saying until when it is protected and by
//! whom. Shared by the admin listener (`/audit/*`) and `wormgate audit` (offline, from the
//! index alone).
//!
//! *Protected by*: `gateway` (the gateway's index alone), `backend` (the backend alone: its
//! bucket retention outlives the wanted date), `both`, or `none` (expired). The *backend floor*
//! is until when the backend alone protects the version: its last modification plus the
//! bucket's period (`bucket-retention`), the same date (`native`), nothing (`gateway`). A *gap*
//! is a wanted protection that outlives the floor: the gateway alone stands between the
//! version and its deletion for that long.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use policy::index::{IndexResult, LockIndex, LockRecord, Scan};
use policy::lock::{BackendRetention, LegalHold, Profile, RetentionMode};
use serde::Serialize;

/// Rows read from the index per step: the memory an export holds at once.
pub const PAGE: usize = 1000;

/// One locked version.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
    pub mode: Option<&'static str>,
    pub retain_until: Option<String>,
    pub legal_hold: bool,
    pub protected_by: &'static str,
    pub backend_floor: Option<String>,
    pub gap: bool,
    /// How long the wanted protection outlives the floor; `null` for a legal hold (no end).
    pub gap_seconds: Option<i64>,
    pub source: &'static str,
    pub written_at: String,
    pub profile: &'static str,
    pub note: Option<String>,
}

fn date(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// What the audit knows of the buckets: their profiles and their backends' retention.
pub struct Context<'a> {
    pub now: DateTime<Utc>,
    pub profile_of: &'a dyn Fn(&str) -> Profile,
    pub backend_of: &'a dyn Fn(&str) -> Option<BackendRetention>,
}

impl Row {
    #[must_use]
    pub fn of(record: &LockRecord, cx: &Context<'_>) -> Self {
        let now = cx.now;
        let bucket = &record.object.bucket;
        let profile = (cx.profile_of)(bucket);
        let lock = record.lock;
        let wanted_active = lock.protects_at(now);
        let hold = lock.legal_hold == LegalHold::On;
        let until = lock.retention.map(|r| r.until);
        let backend = (cx.backend_of)(bucket);
        let floor = match profile {
            Profile::Gateway => None,
            Profile::Native => until,
            Profile::BucketRetention => record
                .backend_since
                .zip(backend)
                .and_then(|(since, b)| b.floor(since, now)),
        };
        let backend_active = match profile {
            // A native backend holds the same retention and hold.
            Profile::Native => wanted_active,
            _ => floor.is_some_and(|f| f > now),
        };
        let protected_by = match (wanted_active, backend_active) {
            (true, true) => "both",
            (true, false) => "gateway",
            (false, true) => "backend",
            (false, false) => "none",
        };
        let (gap, gap_seconds) = if profile == Profile::Native || !wanted_active {
            (false, None)
        } else if hold {
            (true, None)
        } else {
            let end = until.unwrap_or(now);
            let from = floor.map_or(now, |f| f.max(now));
            let secs = (end - from).num_seconds();
            (secs > 0, (secs > 0).then_some(secs))
        };
        let mut note = None;
        if profile == Profile::BucketRetention {
            match backend {
                Some(b) if b.locked => {
                    if lock.retention.map(|r| r.mode) == Some(RetentionMode::Governance)
                        && backend_active
                    {
                        note = Some(
                            "GOVERNANCE requested; the backend's locked bucket retention is stronger: no bypass deletes it before the backend floor"
                                .to_owned(),
                        );
                    }
                }
                Some(b) => {
                    note = Some(match b.lapses_at {
                        Some(at) => format!(
                            "the backend's bucket retention is not locked and lapses at {}",
                            date(at)
                        ),
                        None => "the backend's bucket retention is not locked".to_owned(),
                    });
                }
                None => note = Some("the backend reports no bucket retention".to_owned()),
            }
        }
        Self {
            bucket: bucket.clone(),
            key: record.object.key.clone(),
            version_id: record.object.version_id.clone(),
            mode: lock.retention.map(|r| r.mode.as_s3()),
            retain_until: until.map(date),
            legal_hold: hold,
            protected_by,
            backend_floor: floor.map(date),
            gap,
            gap_seconds,
            source: record.source.as_str(),
            written_at: date(record.written_at),
            profile: profile.as_str(),
            note,
        }
    }

    /// One JSON line, with its newline.
    #[must_use]
    pub fn json_line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// The CSV header line.
    pub const CSV_HEADER: &'static str = "bucket,key,version_id,mode,retain_until,legal_hold,protected_by,backend_floor,gap,gap_seconds,source,written_at,profile,note\n";

    /// One CSV line (RFC 4180 quoting), with its newline.
    #[must_use]
    pub fn csv_line(&self) -> String {
        let fields = [
            self.bucket.clone(),
            self.key.clone(),
            self.version_id.clone().unwrap_or_default(),
            self.mode.unwrap_or("").to_owned(),
            self.retain_until.clone().unwrap_or_default(),
            self.legal_hold.to_string(),
            self.protected_by.to_owned(),
            self.backend_floor.clone().unwrap_or_default(),
            self.gap.to_string(),
            self.gap_seconds.map(|s| s.to_string()).unwrap_or_default(),
            self.source.to_owned(),
            self.written_at.clone(),
            self.profile.to_owned(),
            self.note.clone().unwrap_or_default(),
        ];
        let mut line = String::new();
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            if f.contains([',', '"', '\n', '\r']) {
                let _ = write!(line, "\"{}\"", f.replace('"', "\"\""));
            } else {
                line.push_str(f);
            }
        }
        line.push('\n');
        line
    }
}

/// Which rows a report holds.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub bucket: Option<String>,
    pub prefix: String,
    /// Only retentions ending before this (earliest first).
    pub expiring_before: Option<DateTime<Utc>>,
    /// Only rows with a gap.
    pub gaps_only: bool,
}

/// Where a page starts: after this record.
#[derive(Debug, Clone)]
pub struct Cursor(pub LockRecord);

impl Cursor {
    #[must_use]
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(&self.0).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    #[must_use]
    pub fn decode(s: &str) -> Option<Self> {
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()?;
        serde_json::from_slice(&json).ok().map(Self)
    }
}

/// Reads the index in steps of `PAGE` records, starting after `cursor`, and returns up to
/// `limit` rows that pass `filter`, with the cursor of the last record read when more may follow.
///
/// # Errors
/// The index cannot be read.
pub fn page(
    index: &dyn LockIndex,
    filter: &Filter,
    cx: &Context<'_>,
    cursor: Option<Cursor>,
    limit: usize,
) -> IndexResult<(Vec<Row>, Option<Cursor>)> {
    let mut rows = Vec::new();
    let mut after = cursor.map(|c| c.0);
    loop {
        let records = match filter.expiring_before {
            Some(before) => index.expiring_before(before, after.as_ref(), PAGE)?,
            None => index.scan(&Scan {
                bucket: filter.bucket.as_deref(),
                prefix: &filter.prefix,
                after: after.as_ref().map(|r| &r.object),
                limit: PAGE,
            })?,
        };
        let full = records.len() == PAGE;
        for record in records {
            let wanted = filter
                .bucket
                .as_deref()
                .is_none_or(|b| record.object.bucket == b)
                && record.object.key.starts_with(&filter.prefix);
            if wanted {
                let row = Row::of(&record, cx);
                if !filter.gaps_only || row.gap {
                    rows.push(row);
                }
            }
            after = Some(record);
            if rows.len() == limit {
                return Ok((rows, after.map(Cursor)));
            }
        }
        if !full {
            return Ok((rows, None));
        }
    }
}

/// One bucket's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BucketSummary {
    pub bucket: String,
    pub profile: &'static str,
    pub backend_state: Option<&'static str>,
    pub backend_period_days: Option<u32>,
    pub backend_lapses_at: Option<String>,
    pub locked_versions: u64,
    pub earliest_retain_until: Option<String>,
    pub expiring_within_7_days: u64,
    pub expiring_within_30_days: u64,
    pub gaps: u64,
}

/// Per-bucket figures over every record (buckets in `extra` appear even when empty).
///
/// # Errors
/// The index cannot be read.
pub fn summary(
    index: &dyn LockIndex,
    cx: &Context<'_>,
    extra: &[String],
) -> IndexResult<Vec<BucketSummary>> {
    let now = cx.now;
    let mut by_bucket: BTreeMap<String, (BucketSummary, Option<DateTime<Utc>>)> = BTreeMap::new();
    for b in extra {
        by_bucket.entry(b.clone()).or_default();
    }
    let mut after: Option<LockRecord> = None;
    loop {
        let records = index.scan(&Scan {
            bucket: None,
            prefix: "",
            after: after.as_ref().map(|r| &r.object),
            limit: PAGE,
        })?;
        let full = records.len() == PAGE;
        for record in records {
            let row = Row::of(&record, cx);
            let (s, earliest) = by_bucket.entry(row.bucket.clone()).or_default();
            if record.lock.protects_at(now) {
                s.locked_versions += 1;
                if let Some(r) = record.lock.retention.filter(|r| r.active_at(now)) {
                    *earliest = Some(earliest.map_or(r.until, |e| e.min(r.until)));
                    let days = (r.until - now).num_seconds();
                    if days < 7 * 86_400 {
                        s.expiring_within_7_days += 1;
                    }
                    if days < 30 * 86_400 {
                        s.expiring_within_30_days += 1;
                    }
                }
            }
            if row.gap {
                s.gaps += 1;
            }
            after = Some(record);
        }
        if !full {
            break;
        }
    }
    Ok(by_bucket
        .into_iter()
        .map(|(bucket, (mut s, earliest))| {
            let profile = (cx.profile_of)(&bucket);
            s.profile = profile.as_str();
            if profile == Profile::BucketRetention {
                let backend = (cx.backend_of)(&bucket);
                s.backend_state = Some(match backend {
                    Some(b) if b.locked => "Locked",
                    Some(b) if b.lapses_at.is_some_and(|at| at <= now) => "Lapsed",
                    Some(_) => "InProgress",
                    None => "None",
                });
                s.backend_period_days = backend.map(|b| b.period_days);
                s.backend_lapses_at = backend.and_then(|b| b.lapses_at).map(date);
            }
            s.earliest_retain_until = earliest.map(date);
            s.bucket = bucket;
            s
        })
        .collect())
}

/// How the offline audit is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Jsonl,
}

/// The offline audit (`wormgate audit`): every row the filter selects, page by page, or the
/// per-bucket summary (with the configured buckets), written to `out` in `format`.
///
/// # Errors
/// The index cannot be read, or `out` cannot be written.
#[allow(clippy::cast_precision_loss)]
pub fn export(
    index: &dyn LockIndex,
    cx: &Context<'_>,
    filter: &Filter,
    format: Format,
    summary: Option<&[String]>,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    if let Some(configured) = summary {
        let buckets = self::summary(index, cx, configured).map_err(std::io::Error::other)?;
        match format {
            Format::Jsonl | Format::Csv => {
                for b in &buckets {
                    writeln!(
                        out,
                        "{}",
                        serde_json::to_string(b).map_err(std::io::Error::other)?
                    )?;
                }
            }
            Format::Table => {
                writeln!(
                    out,
                    "{:<24} {:<16} {:<10} {:>6} {:>8} {:<24} {:>5} {:>6} {:>5}",
                    "BUCKET",
                    "PROFILE",
                    "BACKEND",
                    "DAYS",
                    "LOCKED",
                    "EARLIEST",
                    "<7D",
                    "<30D",
                    "GAPS"
                )?;
                for b in &buckets {
                    writeln!(
                        out,
                        "{:<24} {:<16} {:<10} {:>6} {:>8} {:<24} {:>5} {:>6} {:>5}",
                        b.bucket,
                        b.profile,
                        b.backend_state.unwrap_or("-"),
                        b.backend_period_days.map_or("-".into(), |d| d.to_string()),
                        b.locked_versions,
                        b.earliest_retain_until.as_deref().unwrap_or("-"),
                        b.expiring_within_7_days,
                        b.expiring_within_30_days,
                        b.gaps
                    )?;
                }
            }
        }
        return out.flush();
    }
    if matches!(format, Format::Csv) {
        out.write_all(Row::CSV_HEADER.as_bytes())?;
    }
    if matches!(format, Format::Table) {
        writeln!(
            out,
            "{:<20} {:<28} {:<10} {:<24} {:<4} {:<8} {:<24} {:>8}",
            "BUCKET", "KEY", "MODE", "RETAIN-UNTIL", "HOLD", "BY", "BACKEND-FLOOR", "GAP-DAYS"
        )?;
    }
    let mut cursor = None;
    loop {
        let (rows, next) = page(index, filter, cx, cursor, PAGE).map_err(std::io::Error::other)?;
        for r in &rows {
            match format {
                Format::Jsonl => out.write_all(r.json_line().as_bytes())?,
                Format::Csv => out.write_all(r.csv_line().as_bytes())?,
                Format::Table => writeln!(
                    out,
                    "{:<20} {:<28} {:<10} {:<24} {:<4} {:<8} {:<24} {:>8}",
                    r.bucket,
                    r.key,
                    r.mode.unwrap_or("-"),
                    r.retain_until.as_deref().unwrap_or("-"),
                    if r.legal_hold { "ON" } else { "-" },
                    r.protected_by,
                    r.backend_floor.as_deref().unwrap_or("-"),
                    match (r.gap, r.gap_seconds) {
                        (false, _) => "-".to_owned(),
                        (true, None) => "hold".to_owned(),
                        (true, Some(s)) => format!("{:.1}", s as f64 / 86_400.0),
                    }
                )?,
            }
        }
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    out.flush()
}
