//! Lock changes as records on the backend: every PutObjectRetention and PutObjectLegalHold the
//! gateway allows on a store without locks of its own is a new, empty backend object whose
//! name says the whole change. Nothing is rewritten, so a store that forbids overwrites (OSS
//! BucketWorm) keeps them too, and its bucket retention protects them like the versions.
//!
//! ```text
//! .wormgate/l/<enc(K)>!<version>!<record id>!<change>!<based on>!<seen>
//! ```
//!
//! - `<version>`: the version's id, `null` for a key's `null` version;
//! - `<record id>`: made like a version id (`layout::VersionId`), from the trusted clock, so the
//!   records of a version list newest first;
//! - `<change>`: `R-` (retention removed), `RG<ms>` / `RC<ms>` (GOVERNANCE / COMPLIANCE until
//!   the instant `<ms>` milliseconds after the epoch), `H1` / `H0` (legal hold on / off);
//! - `<based on>`: the newest record the gateway read before it decided, `-` for none;
//! - `<seen>`: how many records it read.
//!
//! A version's lock is its upload-time lock (its own metadata) with its records applied oldest
//! first ([`fold`]). A change that only adds protection (a later date, COMPLIANCE, a hold) is
//! always applied. A change that takes some away (a GOVERNANCE retention shortened or removed
//! with the bypass right, a legal hold lifted; or any change that, applied after a record its
//! gateway had not read, would undo some of it) is applied only if its gateway had read every
//! record sorted before it: when another gateway changed the lock in between, or a record
//! landed late, the weakening is applied as far as it does not undo that change (the stricter
//! of both is kept), and the caller can ask again.
//! A record's id is always later than the record it was decided on, even from a gateway whose
//! clock runs behind, so the order of the records a gateway read is the order they fold in.
//! Readers therefore need no coordination, whatever the order gateways wrote in or the skew of
//! their clocks.

use chrono::{DateTime, Utc};
use policy::lock::{LegalHold, ObjectLock, Retention, RetentionMode};

use super::layout::{self, Kind, VersionId};

const JOURNAL: &str = ".wormgate/l/";
/// The most records a version's journal takes (every decision on the version lists them all).
pub const MAX_RECORDS: usize = 1000;
const SEP: char = '!';
/// The version part of the records of a key's `null` version.
const NULL: &str = "null";

/// What one lock change sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Retention(Option<Retention>),
    LegalHold(LegalHold),
}

impl Change {
    /// The lock `current` becomes with this change.
    #[must_use]
    pub fn apply(self, current: ObjectLock) -> ObjectLock {
        match self {
            Self::Retention(retention) => ObjectLock {
                retention,
                ..current
            },
            Self::LegalHold(legal_hold) => ObjectLock {
                legal_hold,
                ..current
            },
        }
    }

    fn render(self) -> String {
        match self {
            Self::Retention(None) => "R-".to_owned(),
            Self::Retention(Some(r)) => {
                let mode = match r.mode {
                    RetentionMode::Governance => 'G',
                    RetentionMode::Compliance => 'C',
                };
                format!("R{mode}{}", r.until.timestamp_millis())
            }
            Self::LegalHold(LegalHold::On) => "H1".to_owned(),
            Self::LegalHold(LegalHold::Off) => "H0".to_owned(),
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "R-" => Self::Retention(None),
            "H1" => Self::LegalHold(LegalHold::On),
            "H0" => Self::LegalHold(LegalHold::Off),
            _ => {
                let rest = s.strip_prefix('R')?;
                let (mode, ms) = rest.split_at_checked(1)?;
                let mode = match mode {
                    "G" => RetentionMode::Governance,
                    "C" => RetentionMode::Compliance,
                    _ => return None,
                };
                if ms.is_empty() || !ms.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let until = DateTime::<Utc>::from_timestamp_millis(ms.parse().ok()?)?;
                Self::Retention(Some(Retention { mode, until }))
            }
        })
    }
}

/// One record of a version's journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: VersionId,
    pub change: Change,
    /// The newest record the deciding gateway had read.
    pub based_on: Option<VersionId>,
    /// How many records the deciding gateway had read.
    pub seen: u32,
}

impl Entry {
    /// A new record of `change`, made at `now`, decided on a journal of `seen` records whose
    /// newest is `based_on`: its id is later than `based_on`'s even when this gateway's clock
    /// runs behind the one that wrote it.
    #[must_use]
    pub fn new(now: DateTime<Utc>, change: Change, based_on: Option<VersionId>, seen: u32) -> Self {
        Self {
            id: VersionId::new_after(now, based_on.as_ref(), Kind::Object),
            change,
            based_on,
            seen,
        }
    }
}

/// The backend prefix of the records of one version (`None`: the key's `null` version), newest
/// first.
#[must_use]
pub fn journal_of(key: &str, version: Option<&str>) -> String {
    let mut out = String::from(JOURNAL);
    out.push_str(&layout::encode(key));
    out.push(SEP);
    out.push_str(version.unwrap_or(NULL));
    out.push(SEP);
    out
}

/// The backend name of `entry` in the journal of (`key`, `version`).
#[must_use]
pub fn entry_name(key: &str, version: Option<&str>, entry: &Entry) -> String {
    let mut out = journal_of(key, version);
    out.push_str(entry.id.as_str());
    out.push(SEP);
    out.push_str(&entry.change.render());
    out.push(SEP);
    out.push_str(entry.based_on.as_ref().map_or("-", VersionId::as_str));
    out.push(SEP);
    out.push_str(&entry.seen.to_string());
    out
}

/// The record a backend name under `prefix` (a [`journal_of`]) stands for; `None` when the
/// name is not one the gateway writes.
#[must_use]
pub fn parse_entry(prefix: &str, name: &str) -> Option<Entry> {
    let rest = name.strip_prefix(prefix)?;
    let mut parts = rest.split(SEP);
    let id = VersionId::parse(parts.next()?)?;
    let change = Change::parse(parts.next()?)?;
    let based_on = match parts.next()? {
        "-" => None,
        other => Some(VersionId::parse(other)?),
    };
    let seen = parts.next()?;
    if seen.is_empty() || !seen.bytes().all(|b| b.is_ascii_digit()) || parts.next().is_some() {
        return None;
    }
    Some(Entry {
        id,
        change,
        based_on,
        seen: seen.parse().ok()?,
    })
}

/// What a version's journal says, applied to its upload-time lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folded {
    pub lock: ObjectLock,
    /// The newest record, which a new change is decided on.
    pub newest: Option<VersionId>,
    /// A legal hold was set on the version at some time (it then answers ON or OFF).
    pub hold_set: bool,
}

/// Applies `entries` (in any order) to `base`, oldest first, as the module says.
#[must_use]
pub fn fold(base: ObjectLock, entries: &[Entry]) -> Folded {
    let mut ordered: Vec<&Entry> = entries.iter().collect();
    // Record ids sort newest first.
    ordered.sort_by(|a, b| b.id.cmp(&a.id));
    let mut lock = base;
    let mut newest: Option<VersionId> = None;
    let mut hold_set = false;
    for (before, entry) in ordered.into_iter().enumerate() {
        let next = entry.change.apply(lock);
        let weakens = lock.strictest(next) != next;
        // A weakening stands only if its gateway had read every record before it: as many as
        // there are, the newest the one just before. A record that landed later, even one
        // sorted earlier (written on an earlier reading, or by a clock behind), makes it stand
        // only as far as it adds protection.
        let read_all_before = u32::try_from(before).is_ok_and(|n| n == entry.seen);
        lock = if !weakens || (read_all_before && entry.based_on == newest) {
            next
        } else {
            lock.strictest(next)
        };
        hold_set |= matches!(entry.change, Change::LegalHold(_));
        newest = Some(entry.id.clone());
    }
    Folded {
        lock,
        newest,
        hold_set,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).expect("date")
    }

    fn gov(secs: i64) -> Change {
        Change::Retention(Some(Retention {
            mode: RetentionMode::Governance,
            until: at(secs),
        }))
    }

    /// A record made at `nanos` by a gateway that had read `seen` records, the newest
    /// `based_on`.
    fn entry(nanos: u64, change: Change, based_on: Option<&Entry>, seen: u32) -> Entry {
        Entry {
            id: VersionId::from_parts(nanos, 1, Kind::Object),
            change,
            based_on: based_on.map(|e| e.id.clone()),
            seen,
        }
    }

    #[test]
    fn names_round_trip_and_nothing_else_parses() {
        let key = "a b/!\"ü";
        let prefix = journal_of(key, Some("v1"));
        let first = entry(5, Change::LegalHold(LegalHold::On), None, 0);
        let second = entry(
            9,
            Change::Retention(Some(Retention {
                mode: RetentionMode::Compliance,
                until: DateTime::from_timestamp_millis(1_900_000_000_123).expect("date"),
            })),
            Some(&first),
            1,
        );
        for e in [
            &first,
            &second,
            &entry(7, Change::Retention(None), None, 12),
        ] {
            let name = entry_name(key, Some("v1"), e);
            assert_eq!(parse_entry(&prefix, &name).as_ref(), Some(e));
        }
        // Newer records list first.
        assert!(entry_name(key, Some("v1"), &second) < entry_name(key, Some("v1"), &first));
        // The null version has its own journal, and another key's records are not this one's.
        assert!(
            parse_entry(&journal_of(key, None), &entry_name(key, Some("v1"), &first)).is_none()
        );
        assert!(parse_entry(&prefix, &entry_name("a b", Some("v1"), &first)).is_none());
        let name = entry_name(key, Some("v1"), &first);
        for bad in [
            format!("{name}!x"),
            name.replace("!H1!", "!H2!"),
            name.replace("!H1!", "!RG!"),
            name.replace("!H1!", "!RX5!"),
            name.replace("!H1!", "!RG-5!"),
            format!("{}!", name.trim_end_matches('0')),
            format!("{}x", name.trim_end_matches('0')),
        ] {
            assert!(parse_entry(&prefix, &bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn protection_is_added_whatever_the_order() {
        let base = ObjectLock::default();
        let a = entry(1, gov(100), None, 0);
        let b = entry(2, Change::LegalHold(LegalHold::On), None, 0);
        let c = entry(3, gov(200), None, 0);
        let folded = fold(base, &[c.clone(), a.clone(), b.clone()]);
        assert_eq!(folded.lock.legal_hold, LegalHold::On);
        assert_eq!(folded.lock.retention.map(|r| r.until), Some(at(200)));
        assert_eq!(folded.newest, Some(c.id));
        assert!(folded.hold_set);
    }

    #[test]
    fn a_weakening_applies_only_on_the_record_it_was_decided_on() {
        let base = ObjectLock::default();
        let hold = entry(1, Change::LegalHold(LegalHold::On), None, 0);
        let longer = entry(2, gov(500), Some(&hold), 1);
        // Lifted by someone who saw the extension: applied.
        let lifted = entry(3, Change::LegalHold(LegalHold::Off), Some(&longer), 2);
        let folded = fold(base, &[hold.clone(), longer.clone(), lifted]);
        assert_eq!(folded.lock.legal_hold, LegalHold::Off);
        assert_eq!(folded.lock.retention.map(|r| r.until), Some(at(500)));
        // Lifted by someone who had only seen the hold: the extension came in between, the
        // hold stays.
        let stale_lift = entry(3, Change::LegalHold(LegalHold::Off), Some(&hold), 1);
        assert_eq!(
            fold(base, &[hold.clone(), longer.clone(), stale_lift])
                .lock
                .legal_hold,
            LegalHold::On
        );
        // A GOVERNANCE retention shortened on a stale view keeps the later date.
        let shorter = entry(3, gov(50), Some(&hold), 1);
        let folded = fold(base, &[hold.clone(), longer.clone(), shorter]);
        assert_eq!(folded.lock.retention.map(|r| r.until), Some(at(500)));
        // Shortened on the latest record: applied.
        let shorter = entry(3, gov(50), Some(&longer), 2);
        let folded = fold(base, &[hold, longer, shorter]);
        assert_eq!(folded.lock.retention.map(|r| r.until), Some(at(50)));
    }

    #[test]
    fn a_record_from_a_clock_behind_still_comes_after_what_it_read() {
        let base = ObjectLock::default();
        let extended = entry(1_000_000, gov(100), None, 0);
        let further = entry(2_000_000, gov(200), Some(&extended), 1);
        // Made 90 s behind the records it read: its id still comes after them.
        let compliance = Entry::new(
            DateTime::from_timestamp_nanos(0),
            Change::Retention(Some(Retention {
                mode: RetentionMode::Compliance,
                until: at(10_000),
            })),
            Some(further.id.clone()),
            2,
        );
        assert!(compliance.id.nanos() > further.id.nanos());
        let folded = fold(base, &[extended, further, compliance]);
        assert_eq!(
            folded.lock.retention.map(|r| (r.mode, r.until)),
            Some((RetentionMode::Compliance, at(10_000)))
        );
    }

    #[test]
    fn the_upload_time_lock_is_the_start() {
        let base = ObjectLock {
            retention: Some(Retention {
                mode: RetentionMode::Compliance,
                until: at(1_000),
            }),
            legal_hold: LegalHold::Off,
        };
        assert_eq!(fold(base, &[]).lock, base);
        assert!(!fold(base, &[]).hold_set);
        // A record that would take the COMPLIANCE date back, made without having read
        // anything (a gateway that never saw the version's journal), does not.
        let back = entry(1, gov(10), Some(&entry(0, gov(5), None, 0)), 1);
        assert_eq!(fold(base, &[back]).lock, base);
    }

    #[test]
    fn a_record_that_lands_late_is_not_undone_by_one_decided_without_it() {
        // A decides COMPLIANCE for a long time on an empty journal; before its record lands,
        // B writes N (GOVERNANCE, a day) on the empty journal, then W (a second more) on [N].
        // A's record sorts first. W, an extension in B's view, would take COMPLIANCE away.
        let base = ObjectLock::default();
        let compliance = entry(
            1,
            Change::Retention(Some(Retention {
                mode: RetentionMode::Compliance,
                until: at(365 * 86_400),
            })),
            None,
            0,
        );
        let n = entry(2, gov(86_400), None, 0);
        let w = entry(3, gov(86_401), Some(&n), 1);
        let folded = fold(base, &[w, n, compliance]);
        assert_eq!(
            folded.lock.retention.map(|r| (r.mode, r.until)),
            Some((RetentionMode::Compliance, at(365 * 86_400)))
        );
    }
}
