//! The rules as tables (operation × mode × lock state × clock edge) and as properties.

use chrono::{DateTime, TimeDelta, Utc};
use policy::lock::{
    BucketLock, LegalHold, ObjectLock, Profile, Retention, RetentionMode, Versioning,
};
use policy::permissions::{Permission, Permissions};
use policy::rules::{
    Action, BucketContents, Bypass, Decision, DenyReason, Facts, PolicyConfig, VersionSpec,
    VersionState, decide,
};
use proptest::prelude::*;

fn t0() -> DateTime<Utc> {
    "2030-06-01T00:00:00Z".parse().expect("date")
}

fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

fn locked(mode: RetentionMode, until: DateTime<Utc>) -> VersionState {
    VersionState::Known(ObjectLock {
        retention: Some(Retention { mode, until }),
        legal_hold: LegalHold::Off,
    })
}

fn held() -> VersionState {
    VersionState::Known(ObjectLock {
        retention: None,
        legal_hold: LegalHold::On,
    })
}

fn facts(caller: Permissions, versioning: Versioning, target: VersionState) -> Facts {
    Facts {
        caller,
        profile: Profile::Gateway,
        bucket: BucketLock {
            enabled: true,
            default_retention: None,
        },
        versioning,
        target,
        contents: BucketContents::NoLocks,
    }
}

fn run(action: Action, f: &Facts, now: DateTime<Utc>) -> Decision {
    decide(action, f, &PolicyConfig::default(), now)
}

const GOV: RetentionMode = RetentionMode::Governance;
const COMP: RetentionMode = RetentionMode::Compliance;
const ADMIN: Permissions = Permissions::ALL;
const BACKUP: Permissions = Permissions::BACKUP;

fn retention(mode: RetentionMode, until: DateTime<Utc>) -> Option<Retention> {
    Some(Retention { mode, until })
}

#[test]
fn destroying_a_version_operation_by_mode_by_clock_edge() {
    let until = t0();
    let destroy_ops = [
        (
            "delete version",
            Action::Delete {
                version: VersionSpec::Specific,
                bypass: Bypass::NotRequested,
            },
            Versioning::Enabled,
        ),
        (
            "plain delete, unversioned",
            Action::Delete {
                version: VersionSpec::Current,
                bypass: Bypass::NotRequested,
            },
            Versioning::Unversioned,
        ),
        (
            "overwrite, unversioned",
            Action::Write {
                lock: ObjectLock::default(),
                bypass: Bypass::NotRequested,
            },
            Versioning::Unversioned,
        ),
        (
            "overwrite, suspended",
            Action::Write {
                lock: ObjectLock::default(),
                bypass: Bypass::NotRequested,
            },
            Versioning::Suspended,
        ),
    ];
    // (now relative to until, expected allowed) — `now == until` has ended.
    let clock = [(-1, false), (0, true), (1, true)];
    for (name, action, versioning) in destroy_ops {
        for mode in [GOV, COMP] {
            for (offset, allowed) in clock {
                let now = until + secs(offset);
                for caller in [BACKUP, ADMIN] {
                    let f = facts(caller, versioning, locked(mode, until));
                    let got = run(action, &f, now);
                    assert_eq!(
                        got.is_allowed(),
                        allowed,
                        "{name} {mode:?} now=until{offset:+}s caller={caller:?}: {got:?}"
                    );
                    if !allowed {
                        assert_eq!(
                            got,
                            Decision::Deny {
                                reason: DenyReason::Retention { mode, until }
                            }
                        );
                    }
                }
            }
            // A legal hold blocks at every clock edge, for everybody.
            for (offset, _) in clock {
                let f = facts(ADMIN, versioning, held());
                assert_eq!(
                    run(action, &f, until + secs(offset)),
                    Decision::Deny {
                        reason: DenyReason::LegalHold
                    },
                    "{name} held"
                );
            }
        }
        // Unknown lock state: never allowed.
        let f = facts(ADMIN, versioning, VersionState::Unknown);
        assert_eq!(
            run(action, &f, until),
            Decision::Deny {
                reason: DenyReason::UnknownLockState
            },
            "{name} unknown"
        );
        // Nothing there, or an empty lock: allowed.
        for target in [
            VersionState::Absent,
            VersionState::Known(ObjectLock::default()),
        ] {
            assert!(run(action, &facts(BACKUP, versioning, target), until).is_allowed());
        }
    }
}

#[test]
fn versioned_writes_and_markers_destroy_nothing() {
    let now = t0();
    let f = facts(BACKUP, Versioning::Enabled, locked(COMP, now + secs(3600)));
    let marker = Action::Delete {
        version: VersionSpec::Current,
        bypass: Bypass::NotRequested,
    };
    assert!(run(marker, &f, now).is_allowed());
    let new_version = Action::Write {
        lock: ObjectLock::default(),
        bypass: Bypass::NotRequested,
    };
    assert!(run(new_version, &f, now).is_allowed());
    // Unknown state does not matter either: nothing is destroyed.
    let f = facts(BACKUP, Versioning::Enabled, VersionState::Unknown);
    assert!(run(marker, &f, now).is_allowed());
}

#[test]
fn governance_bypass_needs_permission_and_header() {
    let now = t0();
    let until = now + secs(60);
    let delete = |bypass| Action::Delete {
        version: VersionSpec::Specific,
        bypass,
    };
    let cases = [
        (
            BACKUP,
            Bypass::NotRequested,
            Some(DenyReason::Retention { mode: GOV, until }),
        ),
        (
            BACKUP,
            Bypass::Requested,
            Some(DenyReason::Missing(Permission::BypassGovernance)),
        ),
        (
            ADMIN,
            Bypass::NotRequested,
            Some(DenyReason::Retention { mode: GOV, until }),
        ),
        (ADMIN, Bypass::Requested, None),
    ];
    for (caller, bypass, want) in cases {
        let f = facts(caller, Versioning::Enabled, locked(GOV, until));
        let got = run(delete(bypass), &f, now);
        assert_eq!(got.denial(), want);
        // COMPLIANCE: the bypass changes nothing.
        let f = facts(caller, Versioning::Enabled, locked(COMP, until));
        assert_eq!(
            run(delete(bypass), &f, now),
            Decision::Deny {
                reason: DenyReason::Retention { mode: COMP, until }
            }
        );
    }
    // The bypass does not lift a legal hold.
    let f = facts(ADMIN, Versioning::Enabled, held());
    assert_eq!(
        run(delete(Bypass::Requested), &f, now),
        Decision::Deny {
            reason: DenyReason::LegalHold
        }
    );
}

/// (current mode, new retention, caller, bypass header, expected denial)
type RetentionCase = (
    RetentionMode,
    Option<Retention>,
    Permissions,
    Bypass,
    Option<DenyReason>,
);

#[test]
fn put_retention_table() {
    let now = t0();
    let until = now + secs(3600);
    let later = until + secs(1);
    let earlier = until - secs(1);
    let put = |r, bypass| Action::PutRetention {
        retention: r,
        bypass,
    };
    use Bypass::{NotRequested as NO, Requested as YES};
    let cases: Vec<RetentionCase> = vec![
        (COMP, retention(COMP, later), BACKUP, NO, None),
        (COMP, retention(COMP, until), BACKUP, NO, None),
        (
            COMP,
            retention(COMP, earlier),
            ADMIN,
            YES,
            Some(DenyReason::ComplianceShortened),
        ),
        (
            COMP,
            retention(GOV, later),
            ADMIN,
            YES,
            Some(DenyReason::ComplianceDowngrade),
        ),
        (
            COMP,
            None,
            ADMIN,
            YES,
            Some(DenyReason::ComplianceShortened),
        ),
        (GOV, retention(GOV, later), BACKUP, NO, None),
        (
            GOV,
            retention(GOV, earlier),
            BACKUP,
            NO,
            Some(DenyReason::GovernanceNeedsBypass),
        ),
        (
            GOV,
            retention(GOV, earlier),
            BACKUP,
            YES,
            Some(DenyReason::Missing(Permission::BypassGovernance)),
        ),
        (GOV, retention(GOV, earlier), ADMIN, YES, None),
        (
            GOV,
            None,
            BACKUP,
            NO,
            Some(DenyReason::GovernanceNeedsBypass),
        ),
        (GOV, None, ADMIN, YES, None),
        (
            GOV,
            retention(COMP, later),
            BACKUP,
            NO,
            Some(DenyReason::GovernanceNeedsBypass),
        ),
        (GOV, retention(COMP, later), ADMIN, YES, None),
        (
            GOV,
            retention(GOV, now),
            ADMIN,
            YES,
            Some(DenyReason::DateNotInFuture),
        ),
        (
            GOV,
            retention(GOV, later),
            Permissions::of(&[Permission::Read, Permission::Write]),
            NO,
            Some(DenyReason::Missing(Permission::ExtendRetention)),
        ),
    ];
    for (i, (mode, new, caller, bypass, want)) in cases.into_iter().enumerate() {
        let f = facts(caller, Versioning::Enabled, locked(mode, until));
        let got = run(put(new, bypass), &f, now);
        assert_eq!(got.denial(), want, "case {i}: {mode:?} -> {new:?}");
    }
    // Once the old retention has ended, anything goes — at exactly `until` too.
    let f = facts(BACKUP, Versioning::Enabled, locked(COMP, until));
    assert!(run(put(retention(GOV, until + secs(5)), NO), &f, until).is_allowed());
    assert!(run(put(None, NO), &f, until).is_allowed());
    assert!(!run(put(None, NO), &f, until - secs(1)).is_allowed());
}

#[test]
fn new_locks_need_a_lock_bucket_a_future_date_and_a_bounded_period() {
    let now = t0();
    let write = |lock| Action::Write {
        lock,
        bypass: Bypass::NotRequested,
    };
    let lock = |until| ObjectLock {
        retention: retention(COMP, until),
        legal_hold: LegalHold::Off,
    };
    let mut f = facts(BACKUP, Versioning::Enabled, VersionState::Absent);
    assert!(run(write(lock(now + secs(1))), &f, now).is_allowed());
    assert_eq!(
        run(write(lock(now)), &f, now),
        Decision::Deny {
            reason: DenyReason::DateNotInFuture
        }
    );
    let too_far = now + TimeDelta::days(36_501);
    assert_eq!(
        run(write(lock(too_far)), &f, now),
        Decision::Deny {
            reason: DenyReason::RetentionTooLong { max_days: 36_500 }
        }
    );
    let hold = ObjectLock {
        retention: None,
        legal_hold: LegalHold::On,
    };
    assert_eq!(
        run(write(hold), &f, now),
        Decision::Deny {
            reason: DenyReason::Missing(Permission::LegalHold)
        }
    );
    f.caller = ADMIN;
    assert!(run(write(hold), &f, now).is_allowed());
    f.bucket.enabled = false;
    assert_eq!(
        run(write(lock(now + secs(1))), &f, now),
        Decision::Deny {
            reason: DenyReason::BucketLockNotEnabled
        }
    );
    assert!(run(write(ObjectLock::default()), &f, now).is_allowed());
}

#[test]
fn bucket_actions() {
    let now = t0();
    let mut f = facts(ADMIN, Versioning::Enabled, VersionState::Absent);
    assert_eq!(
        run(Action::PutVersioning { suspend: true }, &f, now),
        Decision::Deny {
            reason: DenyReason::VersioningLocked
        }
    );
    assert!(run(Action::PutVersioning { suspend: false }, &f, now).is_allowed());
    f.contents = BucketContents::HoldsLocks;
    assert_eq!(
        run(Action::DeleteBucket, &f, now),
        Decision::Deny {
            reason: DenyReason::BucketHoldsLocks
        }
    );
    // Where the backend does not enforce locks, a lock bucket never gets a lifecycle rule,
    // holding locks now or not: it would expire the versions written later.
    for contents in [BucketContents::HoldsLocks, BucketContents::NoLocks] {
        f.contents = contents;
        assert_eq!(
            run(Action::PutLifecycle, &f, now),
            Decision::Deny {
                reason: DenyReason::LifecycleOnLockBucket
            }
        );
    }
    f.bucket.enabled = false;
    f.contents = BucketContents::HoldsLocks;
    assert_eq!(
        run(Action::PutLifecycle, &f, now),
        Decision::Deny {
            reason: DenyReason::BucketHoldsLocks
        }
    );
    f.contents = BucketContents::NoLocks;
    assert!(run(Action::PutLifecycle, &f, now).is_allowed());
    f.bucket.enabled = true;
    f.contents = BucketContents::HoldsLocks;
    f.profile = Profile::Native;
    assert!(run(Action::PutLifecycle, &f, now).is_allowed());
    f.contents = BucketContents::Unknown;
    assert_eq!(
        run(Action::DeleteBucket, &f, now),
        Decision::Deny {
            reason: DenyReason::UnknownLockState
        }
    );
    f.versioning = Versioning::Unversioned;
    assert_eq!(
        run(Action::PutLockConfiguration, &f, now),
        Decision::Deny {
            reason: DenyReason::VersioningNotEnabled
        }
    );
    let f = facts(BACKUP, Versioning::Enabled, VersionState::Absent);
    for action in [
        Action::PutLockConfiguration,
        Action::PutLifecycle,
        Action::DeleteBucket,
        Action::ChangeBucketSettings,
        Action::PutVersioning { suspend: false },
    ] {
        assert_eq!(
            run(action, &f, now),
            Decision::Deny {
                reason: DenyReason::Missing(Permission::Admin)
            },
            "{action:?}"
        );
    }
    assert!(run(Action::CreateBucket { lock_enabled: true }, &f, now).is_allowed());
}

fn arb_mode() -> impl Strategy<Value = RetentionMode> {
    prop_oneof![Just(GOV), Just(COMP)]
}

fn arb_lock() -> impl Strategy<Value = ObjectLock> {
    (
        proptest::option::of((arb_mode(), -100i64..100)),
        any::<bool>(),
    )
        .prop_map(|(r, hold)| ObjectLock {
            retention: r.map(|(mode, off)| Retention {
                mode,
                until: t0() + secs(off),
            }),
            legal_hold: if hold { LegalHold::On } else { LegalHold::Off },
        })
}

fn arb_caller() -> impl Strategy<Value = Permissions> {
    any::<u8>().prop_map(|bits| {
        Permission::ALL
            .into_iter()
            .enumerate()
            .filter(|(i, _)| bits & (1 << i) != 0)
            .map(|(_, p)| p)
            .collect()
    })
}

fn arb_bypass() -> impl Strategy<Value = Bypass> {
    prop_oneof![Just(Bypass::Requested), Just(Bypass::NotRequested)]
}

fn arb_versioning() -> impl Strategy<Value = Versioning> {
    prop_oneof![
        Just(Versioning::Unversioned),
        Just(Versioning::Enabled),
        Just(Versioning::Suspended)
    ]
}

proptest! {
    /// Nothing that destroys a version is allowed while it is under COMPLIANCE, under a legal
    /// hold, or under GOVERNANCE without both the bypass permission and the header.
    #[test]
    fn nothing_destroys_a_protected_version(
        lock in arb_lock(),
        caller in arb_caller(),
        bypass in arb_bypass(),
        versioning in arb_versioning(),
        now_off in -100i64..100,
        specific in any::<bool>(),
        overwrite in any::<bool>(),
    ) {
        let now = t0() + secs(now_off);
        let action = if overwrite {
            Action::Write { lock: ObjectLock::default(), bypass }
        } else {
            Action::Delete {
                version: if specific { VersionSpec::Specific } else { VersionSpec::Current },
                bypass,
            }
        };
        let destroys = versioning != Versioning::Enabled || (!overwrite && specific);
        let f = facts(caller, versioning, VersionState::Known(lock));
        let allowed = run(action, &f, now).is_allowed();
        if allowed && destroys {
            prop_assert!(lock.legal_hold == LegalHold::Off);
            if let Some(r) = lock.retention.filter(|r| r.active_at(now)) {
                prop_assert_eq!(r.mode, GOV);
                prop_assert_eq!(bypass, Bypass::Requested);
                prop_assert!(caller.has(Permission::BypassGovernance));
            }
        }
    }

    /// PutObjectRetention never shortens or downgrades COMPLIANCE, and never shortens anything
    /// without the bypass.
    #[test]
    fn retention_only_grows(
        lock in arb_lock(),
        new in proptest::option::of((arb_mode(), -100i64..200)),
        caller in arb_caller(),
        bypass in arb_bypass(),
        now_off in -100i64..100,
    ) {
        let now = t0() + secs(now_off);
        let new = new.map(|(mode, off)| Retention { mode, until: t0() + secs(off) });
        let f = facts(caller, Versioning::Enabled, VersionState::Known(lock));
        let action = Action::PutRetention { retention: new, bypass };
        if !run(action, &f, now).is_allowed() {
            return Ok(());
        }
        if let Some(n) = new {
            prop_assert!(n.until > now);
        }
        if let Some(cur) = lock.retention.filter(|r| r.active_at(now)) {
            let grows = new.is_some_and(|n| n.until >= cur.until);
            match cur.mode {
                RetentionMode::Compliance => {
                    prop_assert!(grows);
                    prop_assert_eq!(new.map(|n| n.mode), Some(COMP));
                }
                RetentionMode::Governance => {
                    let same_mode = new.is_some_and(|n| n.mode == GOV);
                    if !(grows && same_mode) {
                        prop_assert_eq!(bypass, Bypass::Requested);
                        prop_assert!(caller.has(Permission::BypassGovernance));
                    }
                }
            }
        }
    }

    /// Without knowing the lock state, nothing destructive or lock-changing is allowed.
    #[test]
    fn unknown_state_fails_closed(
        caller in arb_caller(),
        bypass in arb_bypass(),
        versioning in arb_versioning(),
        new in proptest::option::of((arb_mode(), 1i64..200)),
    ) {
        let f = facts(caller, versioning, VersionState::Unknown);
        let new = new.map(|(mode, off)| Retention { mode, until: t0() + secs(off) });
        let specific = Action::Delete { version: VersionSpec::Specific, bypass };
        let put = Action::PutRetention { retention: new, bypass };
        prop_assert!(!run(specific, &f, t0()).is_allowed());
        prop_assert!(!run(put, &f, t0()).is_allowed());
        if versioning != Versioning::Enabled {
            let overwrite = Action::Write { lock: ObjectLock::default(), bypass };
            prop_assert!(!run(overwrite, &f, t0()).is_allowed());
        }
    }
}

#[test]
fn expiry_decisions_are_told_apart() {
    let until = t0();
    let delete = Action::Delete {
        version: VersionSpec::Specific,
        bypass: Bypass::NotRequested,
    };
    let ended = facts(BACKUP, Versioning::Enabled, locked(COMP, until));
    // After the date: allowed, and allowed only because the lock ended.
    assert!(run(delete, &ended, until).is_allowed());
    assert!(policy::rules::allowed_by_expiry(
        delete,
        &ended,
        &PolicyConfig::default(),
        until + secs(5)
    ));
    // Before the date: refused, so not an expiry decision.
    assert!(!policy::rules::allowed_by_expiry(
        delete,
        &ended,
        &PolicyConfig::default(),
        until - secs(5)
    ));
    // No lock, or a hold that outlives the retention: time decides nothing.
    let plain = facts(
        BACKUP,
        Versioning::Enabled,
        VersionState::Known(ObjectLock::default()),
    );
    assert!(!policy::rules::allowed_by_expiry(
        delete,
        &plain,
        &PolicyConfig::default(),
        until
    ));
    let mut hold_too = ended;
    hold_too.target = VersionState::Known(ObjectLock {
        retention: retention(COMP, until),
        legal_hold: LegalHold::On,
    });
    assert!(!policy::rules::allowed_by_expiry(
        delete,
        &hold_too,
        &PolicyConfig::default(),
        until + secs(5)
    ));
    // A GOVERNANCE lock the caller may bypass anyway: allowed before the date too.
    let bypassing = Action::Delete {
        version: VersionSpec::Specific,
        bypass: Bypass::Requested,
    };
    let gov = facts(ADMIN, Versioning::Enabled, locked(GOV, until));
    assert!(!policy::rules::allowed_by_expiry(
        bypassing,
        &gov,
        &PolicyConfig::default(),
        until + secs(5)
    ));
}
