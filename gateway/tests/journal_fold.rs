//! The lock journal under concurrent writers (`wormgate::versions::journal`): gateways that read
//! a version's journal at different moments, with clocks that disagree, each write one change
//! that adds protection to what it read (all a backup agent may do). Whatever the interleaving
//! of reads and landings, the lock the whole journal folds to must be at least as strict as
//! every lock a writer acknowledged.

use chrono::{DateTime, Utc};
use policy::lock::{LegalHold, ObjectLock, Retention, RetentionMode};
use proptest::prelude::*;
use wormgate::versions::journal::{Change, Entry, fold};
use wormgate::versions::layout::{Kind, VersionId};

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).expect("date")
}

/// One writer: when it reads (an index into the sequence of landings), how far its clock is
/// off, and what it adds to what it read.
#[derive(Debug, Clone)]
struct Writer {
    reads_after: usize,
    clock_nanos: u64,
    adds_days: i64,
    compliance: bool,
    hold: bool,
}

fn writer() -> impl Strategy<Value = Writer> {
    (
        0usize..8,
        0u64..1_000,
        0i64..5,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(reads_after, clock_nanos, adds_days, compliance, hold)| Writer {
                reads_after,
                clock_nanos,
                adds_days,
                compliance,
                hold,
            },
        )
}

/// The change a writer makes on what it read: a later (or equal) date, COMPLIANCE if it
/// already was or if it asks, or a hold.
fn change_on(view: ObjectLock, w: &Writer) -> Change {
    if w.hold {
        return Change::LegalHold(LegalHold::On);
    }
    let (mode, until) = view
        .retention
        .map_or((RetentionMode::Governance, at(1_000)), |r| {
            (r.mode, r.until)
        });
    let mode = if w.compliance {
        RetentionMode::Compliance
    } else {
        mode
    };
    Change::Retention(Some(Retention {
        mode,
        until: until + chrono::TimeDelta::days(w.adds_days),
    }))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn no_acknowledged_protection_is_lost(
        base_days in 0i64..3,
        base_compliance in any::<bool>(),
        writers in proptest::collection::vec(writer(), 1..7),
    ) {
        let base = ObjectLock {
            retention: (base_days > 0).then(|| Retention {
                mode: if base_compliance { RetentionMode::Compliance } else { RetentionMode::Governance },
                until: at(base_days * 86_400),
            }),
            legal_hold: LegalHold::Off,
        };
        // Writers land in the order given; each read the records landed before its own
        // `reads_after` (at most those landed before it: a read comes before its own write).
        let mut landed: Vec<Entry> = Vec::new();
        let mut acknowledged: Vec<ObjectLock> = Vec::new();
        for (i, w) in writers.iter().enumerate() {
            let read: Vec<Entry> = landed[..w.reads_after.min(i)].to_vec();
            let view = fold(base, &read);
            let change = change_on(view.lock, w);
            let acked = change.apply(view.lock);
            prop_assume!(view.lock.strictest(acked) == acked);
            let newest = view.newest.clone();
            // A clock anywhere in a window, sometimes behind what it read; the id is later
            // than the newest record read, as `VersionId::new_after` makes it.
            let nanos = (w.clock_nanos * 1_000)
                .max(newest.as_ref().map_or(0, |n| n.nanos() + 1));
            let id = VersionId::from_parts(nanos, i as u64, Kind::Object);
            landed.push(Entry {
                id,
                change,
                based_on: newest,
                seen: u32::try_from(read.len()).unwrap_or(u32::MAX),
            });
            acknowledged.push(acked);
        }
        let all = fold(base, &landed).lock;
        for acked in acknowledged {
            prop_assert_eq!(all.strictest(acked), all, "acknowledged {:?}, folded {:?}", acked, all);
        }
    }
}
