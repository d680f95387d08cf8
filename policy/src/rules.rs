//! The one decision: may this mutating request go to the backend?
//!
//! `decide` is pure. It reads no clock (`now` is an argument), performs no I/O and knows nothing
//! of HTTP. Every mutating S3 path becomes an `Action`; a batch (DeleteObjects) is decided one
//! `Action` per key, to the end. A denial is a value, never a panic or an error.
//!
//! What it must never do: let anything destroy, overwrite, shorten or downgrade a protected
//! version, or decide "allowed" on a lock state it does not know.

use chrono::{DateTime, TimeDelta, Utc};

use crate::lock::{
    BucketLock, LegalHold, ObjectLock, Profile, Retention, RetentionMode, Versioning,
};
use crate::permissions::{Permission, Permissions};

/// Whether the request carried `x-amz-bypass-governance-retention: true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bypass {
    Requested,
    NotRequested,
}

/// Which version a delete names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    /// No version id: in a versioned bucket this only adds a delete marker.
    Current,
    /// An explicit version id (or the only version of an unversioned store).
    Specific,
}

/// What the lock state of the version the request touches is known to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionState {
    /// The version does not exist.
    Absent,
    /// The version exists with this lock (possibly empty).
    Known(ObjectLock),
    /// The index and the backend could not tell. Never allows anything destructive.
    Unknown,
}

/// Whether a bucket still holds protected versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketContents {
    NoLocks,
    HoldsLocks,
    Unknown,
}

/// Every mutating S3 path, as the rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A new object or version: PutObject, CopyObject's destination, CompleteMultipartUpload.
    /// `lock` is what the new version will carry (headers, or the bucket default).
    Write { lock: ObjectLock, bypass: Bypass },
    /// A multipart upload begins; `lock` is what it will carry once completed.
    StartUpload { lock: ObjectLock },
    /// Writes that create no object version and destroy none: UploadPart, AbortMultipartUpload,
    /// object tags and ACLs, RestoreObject.
    Upload,
    /// DeleteObject, or one key of DeleteObjects.
    Delete {
        version: VersionSpec,
        bypass: Bypass,
    },
    /// PutObjectRetention; `None` clears the retention.
    PutRetention {
        retention: Option<Retention>,
        bypass: Bypass,
    },
    /// PutObjectLegalHold.
    PutLegalHold { hold: LegalHold },
    /// CreateBucket; `lock_enabled` from `x-amz-bucket-object-lock-enabled`.
    CreateBucket { lock_enabled: bool },
    /// PutObjectLockConfiguration.
    PutLockConfiguration,
    /// PutBucketVersioning.
    PutVersioning { suspend: bool },
    /// PutBucketLifecycle(Configuration): rules that may expire objects.
    PutLifecycle,
    /// Any other bucket setting (policy, ACL, CORS, tags, encryption, replication, ...), and
    /// deleting one.
    ChangeBucketSettings,
    /// DeleteBucket.
    DeleteBucket,
}

/// What the gateway knows when it asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// The permissions of the user making the request.
    pub caller: Permissions,
    pub profile: Profile,
    pub bucket: BucketLock,
    pub versioning: Versioning,
    /// The version the request touches (for object actions; `Absent` for bucket actions).
    pub target: VersionState,
    /// For bucket actions that could destroy data wholesale.
    pub contents: BucketContents,
}

/// Settings of the rules themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyConfig {
    /// The longest retention anyone may set, in days. A hostile client holding a backup key
    /// could otherwise lock data "forever" and leave the owner paying for it.
    pub max_retention_days: u32,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            max_retention_days: crate::lock::Period::MAX_DAYS,
        }
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// The version is under an active retention.
    Retention {
        mode: RetentionMode,
        until: DateTime<Utc>,
    },
    /// The version is under a legal hold.
    LegalHold,
    /// A COMPLIANCE retention would end earlier or be removed.
    ComplianceShortened,
    /// COMPLIANCE → GOVERNANCE.
    ComplianceDowngrade,
    /// A GOVERNANCE retention would be shortened, removed or changed without the bypass.
    GovernanceNeedsBypass,
    /// The user lacks a permission the request needs.
    Missing(Permission),
    /// Lock parameters, retention or a legal hold on a bucket without object lock.
    BucketLockNotEnabled,
    /// The bypass header on a bucket without object lock.
    BypassWithoutLock,
    /// A retain-until date not after now.
    DateNotInFuture,
    /// A retain-until date beyond the configured maximum.
    RetentionTooLong { max_days: u32 },
    /// A bucket that still holds protected versions would be deleted or given expiring rules.
    BucketHoldsLocks,
    /// A lifecycle rule on a lock bucket whose backend does not enforce the locks: it would
    /// expire locked versions, today's or those written later, behind the gateway's back.
    LifecycleOnLockBucket,
    /// Versioning cannot be suspended on a lock bucket.
    VersioningLocked,
    /// A lock configuration needs versioning enabled first (native backends).
    VersioningNotEnabled,
    /// Retention or legal hold asked of a version that does not exist.
    NoSuchVersion,
    /// The lock state could not be established: fail closed.
    UnknownLockState,
}

/// Proof that [`decide`] allowed an action. Nothing outside this module can make one, so a
/// `Decision::Allow` (and the gateway's leave to reach the backend, which only an `Allow`
/// gives) cannot be written by hand:
///
/// ```compile_fail
/// let forged = policy::rules::Decision::Allow(policy::rules::Allowed(()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed(());

/// The answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow(Allowed),
    Deny { reason: DenyReason },
}

impl Decision {
    #[must_use]
    pub fn is_allowed(self) -> bool {
        matches!(self, Self::Allow(_))
    }

    /// The reason of a denial; `None` for an allow.
    #[must_use]
    pub fn denial(self) -> Option<DenyReason> {
        match self {
            Self::Allow(_) => None,
            Self::Deny { reason } => Some(reason),
        }
    }
}

fn deny(reason: DenyReason) -> Decision {
    Decision::Deny { reason }
}

/// Turns `Err(reason)` into a denial so the rules read as a sequence of `?` checks.
type Check = Result<(), DenyReason>;

fn need(caller: Permissions, p: Permission) -> Check {
    if caller.has(p) {
        Ok(())
    } else {
        Err(DenyReason::Missing(p))
    }
}

/// Decides one action.
#[must_use]
pub fn decide(
    action: Action,
    facts: &Facts,
    config: &PolicyConfig,
    now: DateTime<Utc>,
) -> Decision {
    match check(action, facts, config, now) {
        Ok(()) => Decision::Allow(Allowed(())),
        Err(reason) => deny(reason),
    }
}

/// Whether an `Allow` at `now` rests on the target's retention having ended: the same request
/// would have been refused a moment before that retention's date. Such a decision is only as
/// good as the clock, and the gateway has the backend's clock confirm it first.
#[must_use]
pub fn allowed_by_expiry(
    action: Action,
    facts: &Facts,
    config: &PolicyConfig,
    now: DateTime<Utc>,
) -> bool {
    let VersionState::Known(lock) = facts.target else {
        return false;
    };
    let Some(retention) = lock.retention else {
        return false;
    };
    if retention.active_at(now) || !decide(action, facts, config, now).is_allowed() {
        return false;
    }
    let before = retention.until - chrono::TimeDelta::milliseconds(1);
    !decide(action, facts, config, before).is_allowed()
}

fn check(action: Action, facts: &Facts, config: &PolicyConfig, now: DateTime<Utc>) -> Check {
    let caller = facts.caller;
    match action {
        Action::Write { lock, bypass } => {
            need(caller, Permission::Write)?;
            check_new_lock(lock, facts, config, now)?;
            if facts.versioning != Versioning::Enabled {
                // The write replaces the only version.
                may_destroy(facts, bypass, now)?;
            }
            Ok(())
        }
        Action::StartUpload { lock } => {
            need(caller, Permission::Write)?;
            check_new_lock(lock, facts, config, now)
        }
        Action::Upload => need(caller, Permission::Write),
        Action::Delete { version, bypass } => {
            need(caller, Permission::Write)?;
            if bypass == Bypass::Requested && !facts.bucket.enabled {
                return Err(DenyReason::BypassWithoutLock);
            }
            if version == VersionSpec::Current && facts.versioning == Versioning::Enabled {
                // A delete marker; the versions underneath stay.
                return Ok(());
            }
            may_destroy(facts, bypass, now)
        }
        Action::PutRetention { retention, bypass } => {
            need(caller, Permission::ExtendRetention)?;
            if !facts.bucket.enabled {
                return Err(DenyReason::BucketLockNotEnabled);
            }
            if let Some(r) = retention {
                check_date(r, config, now)?;
            }
            let current = match facts.target {
                VersionState::Absent => return Err(DenyReason::NoSuchVersion),
                VersionState::Unknown => return Err(DenyReason::UnknownLockState),
                VersionState::Known(lock) => lock.retention.filter(|r| r.active_at(now)),
            };
            let Some(current) = current else {
                return Ok(());
            };
            match (current.mode, retention) {
                (RetentionMode::Compliance, None) => Err(DenyReason::ComplianceShortened),
                (RetentionMode::Compliance, Some(new)) if new.mode == RetentionMode::Governance => {
                    Err(DenyReason::ComplianceDowngrade)
                }
                (RetentionMode::Compliance, Some(new)) if new.until < current.until => {
                    Err(DenyReason::ComplianceShortened)
                }
                (RetentionMode::Compliance, Some(_)) => Ok(()),
                (RetentionMode::Governance, Some(new))
                    if new.mode == RetentionMode::Governance && new.until >= current.until =>
                {
                    Ok(())
                }
                // Shortened, cleared or moved to COMPLIANCE: the bypass is needed.
                (RetentionMode::Governance, _) => bypass_governance(caller, bypass),
            }
        }
        Action::PutLegalHold { .. } => {
            need(caller, Permission::LegalHold)?;
            if !facts.bucket.enabled {
                return Err(DenyReason::BucketLockNotEnabled);
            }
            match facts.target {
                VersionState::Absent => Err(DenyReason::NoSuchVersion),
                VersionState::Unknown => Err(DenyReason::UnknownLockState),
                VersionState::Known(_) => Ok(()),
            }
        }
        Action::CreateBucket { .. } => need(caller, Permission::Write),
        Action::PutLockConfiguration => {
            need(caller, Permission::Admin)?;
            if facts.profile == Profile::Native && facts.versioning != Versioning::Enabled {
                return Err(DenyReason::VersioningNotEnabled);
            }
            Ok(())
        }
        Action::PutVersioning { suspend } => {
            need(caller, Permission::Admin)?;
            if suspend && facts.bucket.enabled {
                return Err(DenyReason::VersioningLocked);
            }
            Ok(())
        }
        Action::PutLifecycle => {
            need(caller, Permission::Admin)?;
            // A native backend's lifecycle respects its own locks; elsewhere the backend would
            // expire locked objects behind the gateway's back.
            if facts.profile == Profile::Native {
                return Ok(());
            }
            if facts.bucket.enabled {
                return Err(DenyReason::LifecycleOnLockBucket);
            }
            bucket_is_free(facts)
        }
        Action::ChangeBucketSettings => need(caller, Permission::Admin),
        Action::DeleteBucket => {
            need(caller, Permission::Admin)?;
            bucket_is_free(facts)
        }
    }
}

fn bucket_is_free(facts: &Facts) -> Check {
    match facts.contents {
        BucketContents::NoLocks => Ok(()),
        BucketContents::HoldsLocks => Err(DenyReason::BucketHoldsLocks),
        BucketContents::Unknown => Err(DenyReason::UnknownLockState),
    }
}

fn bypass_governance(caller: Permissions, bypass: Bypass) -> Check {
    match bypass {
        Bypass::NotRequested => Err(DenyReason::GovernanceNeedsBypass),
        Bypass::Requested => need(caller, Permission::BypassGovernance),
    }
}

/// The lock a new version will carry is acceptable.
fn check_new_lock(
    lock: ObjectLock,
    facts: &Facts,
    config: &PolicyConfig,
    now: DateTime<Utc>,
) -> Check {
    if lock.is_empty() {
        return Ok(());
    }
    if !facts.bucket.enabled {
        return Err(DenyReason::BucketLockNotEnabled);
    }
    if let Some(r) = lock.retention {
        check_date(r, config, now)?;
    }
    if lock.legal_hold == LegalHold::On {
        need(facts.caller, Permission::LegalHold)?;
    }
    Ok(())
}

fn check_date(r: Retention, config: &PolicyConfig, now: DateTime<Utc>) -> Check {
    if r.until <= now {
        return Err(DenyReason::DateNotInFuture);
    }
    let max = now.checked_add_signed(TimeDelta::days(i64::from(config.max_retention_days)));
    if max.is_some_and(|max| r.until > max) {
        return Err(DenyReason::RetentionTooLong {
            max_days: config.max_retention_days,
        });
    }
    Ok(())
}

/// The target version may be destroyed (deleted or replaced) now.
fn may_destroy(facts: &Facts, bypass: Bypass, now: DateTime<Utc>) -> Check {
    let lock = match facts.target {
        VersionState::Absent => return Ok(()),
        VersionState::Unknown => return Err(DenyReason::UnknownLockState),
        VersionState::Known(lock) => lock,
    };
    if lock.legal_hold == LegalHold::On {
        return Err(DenyReason::LegalHold);
    }
    match lock.retention {
        Some(r) if r.active_at(now) => match r.mode {
            RetentionMode::Compliance => Err(DenyReason::Retention {
                mode: r.mode,
                until: r.until,
            }),
            RetentionMode::Governance => match bypass {
                Bypass::NotRequested => Err(DenyReason::Retention {
                    mode: r.mode,
                    until: r.until,
                }),
                Bypass::Requested => need(facts.caller, Permission::BypassGovernance),
            },
        },
        _ => Ok(()),
    }
}
