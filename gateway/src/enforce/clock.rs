//! The time every lock decision is made at, and why it can be trusted.
//!
//! Decisions never read the system clock directly: they ask `TrustedTime`, which guards the
//! host's clock two ways.
//!
//! - **A high-water mark.** The gateway's time never runs backwards past the latest time it has
//!   known to be right. The mark is raised only by the backend's `Date` header (never past the
//!   host's own reading), and it is persisted, so a restart under a host clock set back still
//!   starts from it.
//! - **The backend's word on expiry.** A decision that lets a destructive request through
//!   *because a lock has ended* also needs the backend's clock to agree with the gateway's
//!   within `tolerance`. The backend's time is its latest `Date` header plus the monotonic time
//!   elapsed since (a host clock moved by hand does not move the monotonic one). A reading
//!   older than `FRESH`, or one that disagrees, is taken again once before refusing. Otherwise
//!   the request is refused with 503, a metric and an error in the log: a host clock moved a
//!   year forward unlocks nothing early.
//!
//! A clock that runs behind only delays expiry (the mark holds it up, and expiry decisions
//! disagree with the backend and are refused); one that runs ahead is caught by the backend's
//! `Date`. The mark follows the backend's `Date` only up to the host's own reading, so a host
//! clock that was ahead and is put right does not leave the gateway ahead.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The host's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// How old a backend `Date` reading may be and still vouch for an expiry decision.
pub const FRESH: Duration = Duration::from_secs(10);

/// The default agreement asked of the backend's clock: 5 minutes.
pub const DEFAULT_TOLERANCE_SECS: u32 = crate::config::DEFAULT_CLOCK_TOLERANCE_SECS;

/// The file, in the index directory, that keeps the high-water mark.
pub const HIGH_WATER_FILE: &str = "clock-high-water";

/// What the backend's clock said, and when (monotonic).
#[derive(Debug, Clone, Copy)]
struct Reading {
    date: DateTime<Utc>,
    at: Instant,
}

/// The outcome of asking the backend's clock about an expiry decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agreement {
    /// The backend's clock agrees within the tolerance.
    Agrees,
    /// No reading fresh enough to decide; take one and ask again.
    NeedReading,
    /// The backend's clock is this many seconds behind (negative: ahead of) the gateway's.
    Disagrees { gateway_ahead_secs: i64 },
}

/// The gateway's clock: the host's (or a test's), held up by a persisted high-water mark and
/// checked against the backend's `Date` for expiry decisions.
pub struct TrustedTime {
    source: Arc<dyn Clock>,
    /// Milliseconds since the epoch; `i64::MIN` when nothing is known.
    high_water: AtomicI64,
    persisted: AtomicI64,
    file: Option<PathBuf>,
    backend: Mutex<Option<Reading>>,
    tolerance: TimeDelta,
}

impl TrustedTime {
    /// A clock reading `source`, with the high-water mark kept in `dir` (loaded now if it is
    /// there). Without `dir` the mark lives in memory only.
    ///
    /// # Errors
    /// The mark file exists but cannot be read or parsed: the time it guards is unknown.
    pub fn new(
        source: Arc<dyn Clock>,
        dir: Option<&Path>,
        tolerance_secs: u32,
    ) -> std::io::Result<Self> {
        let file = dir.map(|d| d.join(HIGH_WATER_FILE));
        let loaded = match &file {
            Some(path) => read_mark(path)?,
            None => None,
        };
        let mark = loaded.map_or(i64::MIN, |d| d.timestamp_millis());
        let time = Self {
            source,
            high_water: AtomicI64::new(mark),
            persisted: AtomicI64::new(mark),
            file,
            backend: Mutex::new(None),
            tolerance: TimeDelta::seconds(i64::from(tolerance_secs)),
        };
        if let Some(mark) = loaded {
            let host = time.source.now();
            if host < mark {
                tracing::warn!(
                    host = %host.to_rfc3339(),
                    high_water = %mark.to_rfc3339(),
                    "the host clock is behind the persisted high-water mark; time is held at the mark"
                );
            }
        }
        Ok(time)
    }

    /// The host's clock, no mark and no file: for tools that only read the index.
    #[must_use]
    pub fn system() -> Self {
        Self {
            source: Arc::new(SystemClock),
            high_water: AtomicI64::new(i64::MIN),
            persisted: AtomicI64::new(i64::MIN),
            file: None,
            backend: Mutex::new(None),
            tolerance: TimeDelta::seconds(i64::from(DEFAULT_TOLERANCE_SECS)),
        }
    }

    /// The time decisions are made at: the source's, never earlier than the mark.
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        let host = self.source.now();
        match self.high_water() {
            Some(mark) if mark > host => mark,
            _ => host,
        }
    }

    /// The high-water mark, if any.
    #[must_use]
    pub fn high_water(&self) -> Option<DateTime<Utc>> {
        match self.high_water.load(Ordering::Relaxed) {
            i64::MIN => None,
            ms => DateTime::from_timestamp_millis(ms),
        }
    }

    #[must_use]
    pub fn tolerance(&self) -> TimeDelta {
        self.tolerance
    }

    /// Takes note of a backend reply's `Date` header (RFC 7231 form). Raises the mark to it,
    /// never past the host's own reading.
    pub fn observe_backend_date(&self, header: Option<&http::HeaderValue>) {
        let Some(date) = header
            .and_then(|v| v.to_str().ok())
            .and_then(|s| DateTime::parse_from_rfc2822(s).ok())
            .map(|d| d.with_timezone(&Utc))
        else {
            return;
        };
        if let Ok(mut last) = self.backend.lock() {
            *last = Some(Reading {
                date,
                at: Instant::now(),
            });
        }
        let raised = date.min(self.source.now()).timestamp_millis();
        self.high_water.fetch_max(raised, Ordering::Relaxed);
    }

    /// The backend's time now, by its latest reading, if that reading is younger than `FRESH`.
    fn backend_now(&self) -> Option<DateTime<Utc>> {
        let last = (*self.backend.lock().ok()?)?;
        let age = last.at.elapsed();
        if age > FRESH {
            return None;
        }
        Some(last.date + TimeDelta::from_std(age).ok()?)
    }

    /// Whether the backend's clock vouches for `now` (the time a decision was made at).
    #[must_use]
    pub fn agreement(&self, now: DateTime<Utc>) -> Agreement {
        let Some(backend) = self.backend_now() else {
            return Agreement::NeedReading;
        };
        // `Date` has whole seconds: allow the second it truncated.
        let ahead = now - backend;
        if ahead <= self.tolerance + TimeDelta::seconds(1) && -ahead <= self.tolerance {
            Agreement::Agrees
        } else {
            Agreement::Disagrees {
                gateway_ahead_secs: ahead.num_seconds(),
            }
        }
    }

    /// Forgets the latest backend reading (so that the next check takes a new one).
    pub fn forget_reading(&self) {
        if let Ok(mut last) = self.backend.lock() {
            *last = None;
        }
    }

    /// Writes the mark to its file if it moved since the last write (write, sync, rename).
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn persist(&self) -> std::io::Result<()> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let mark = self.high_water.load(Ordering::Relaxed);
        if mark == i64::MIN || mark <= self.persisted.load(Ordering::Relaxed) {
            return Ok(());
        }
        let Some(date) = DateTime::from_timestamp_millis(mark) else {
            return Ok(());
        };
        write_mark(path, date)?;
        self.persisted.fetch_max(mark, Ordering::Relaxed);
        Ok(())
    }
}

fn read_mark(path: &Path) -> std::io::Result<Option<DateTime<Utc>>> {
    match std::fs::read_to_string(path) {
        Ok(text) => DateTime::parse_from_rfc3339(text.trim())
            .map(|d| Some(d.with_timezone(&Utc)))
            .map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(std::io::Error::new(
            e.kind(),
            format!("{}: {e}", path.display()),
        )),
    }
}

fn write_mark(path: &Path, date: DateTime<Utc>) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(
        date.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            .as_bytes(),
    )?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(AtomicI64);
    impl Clock for Fixed {
        fn now(&self) -> DateTime<Utc> {
            DateTime::from_timestamp_millis(self.0.load(Ordering::Relaxed)).unwrap_or_default()
        }
    }
    fn fixed(at: DateTime<Utc>) -> Arc<Fixed> {
        Arc::new(Fixed(AtomicI64::new(at.timestamp_millis())))
    }
    fn date_header(d: DateTime<Utc>) -> http::HeaderValue {
        http::HeaderValue::from_str(&d.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
            .unwrap_or_else(|_| http::HeaderValue::from_static(""))
    }
    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn never_runs_back_past_the_persisted_mark() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = at("2026-06-01T12:00:00Z");
        let host = fixed(real);
        let time = TrustedTime::new(host.clone(), Some(dir.path()), 300).expect("clock");
        assert_eq!(time.now(), real);
        time.observe_backend_date(Some(&date_header(real)));
        time.persist().expect("persist");

        // Restart with the host clock set back a year: time starts from the mark.
        let back = fixed(real - TimeDelta::days(365));
        let time = TrustedTime::new(back, Some(dir.path()), 300).expect("clock");
        assert_eq!(time.now(), real);
        assert_eq!(time.high_water(), Some(real));
    }

    #[test]
    fn the_mark_follows_the_backend_never_past_the_host() {
        let real = at("2026-06-01T12:00:00Z");
        // The host is a year ahead: the backend's date raises the mark, the host's does not.
        let host = fixed(real + TimeDelta::days(365));
        let time = TrustedTime::new(host.clone(), None, 300).expect("clock");
        time.observe_backend_date(Some(&date_header(real)));
        assert_eq!(time.high_water(), Some(real));
        // The host is put right: the gateway is not left ahead.
        host.0.store(real.timestamp_millis(), Ordering::Relaxed);
        assert_eq!(time.now(), real);
        // The backend ahead of the host raises the mark only to the host's reading.
        time.observe_backend_date(Some(&date_header(real + TimeDelta::days(2))));
        assert_eq!(time.high_water(), Some(real));
    }

    #[test]
    fn expiry_needs_the_backend_to_agree() {
        let real = at("2026-06-01T12:00:00Z");
        let host = fixed(real);
        let time = TrustedTime::new(host.clone(), None, 300).expect("clock");
        assert_eq!(time.agreement(time.now()), Agreement::NeedReading);
        time.observe_backend_date(Some(&date_header(real + TimeDelta::seconds(60))));
        assert_eq!(time.agreement(time.now()), Agreement::Agrees);
        host.0.store(
            (real + TimeDelta::days(365)).timestamp_millis(),
            Ordering::Relaxed,
        );
        assert!(matches!(
            time.agreement(time.now()),
            Agreement::Disagrees { gateway_ahead_secs } if gateway_ahead_secs > 364 * 86_400
        ));
        time.forget_reading();
        assert_eq!(time.agreement(time.now()), Agreement::NeedReading);
    }

    #[test]
    fn unreadable_mark_is_an_error_and_junk_dates_are_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(HIGH_WATER_FILE), "yesterday").expect("write");
        assert!(TrustedTime::new(Arc::new(SystemClock), Some(dir.path()), 300).is_err());
        let time = TrustedTime::system();
        time.observe_backend_date(Some(&http::HeaderValue::from_static("not a date")));
        assert_eq!(time.high_water(), None);
        assert_eq!(time.agreement(time.now()), Agreement::NeedReading);
    }
}
