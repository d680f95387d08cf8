//! The one rewrite per profile: what a decided request carries to the backend about locks.
//!
//! The client's lock, bypass and bucket-lock headers never pass through (`backend::door` drops
//! them); what was decided is set again here, in the form the profile's backend reads:
//! - `native`: S3's own headers, with the decided values (a date in UTC, the bypass only for
//!   a user who holds the right, the bucket's lock as `true`);
//! - `gateway` and `bucket-retention`: the backend has no lock of its own; a new version
//!   carries its lock as the reserved `x-amz-meta-wormgate-*` metadata, and nothing else is
//!   sent.

use http::{HeaderMap, HeaderValue};
use policy::index::LockSource;
use policy::lock::{ObjectLock, Profile};
use policy::permissions::Permissions;
use policy::rules::Bypass;

use crate::s3::lock_headers;

/// What the decision put on a request, for its backend.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Carried {
    /// The lock of a new version, and where it came from.
    NewVersion(ObjectLock, LockSource),
    /// The bypass a delete or a retention change asked for, and who asked.
    Bypass(Bypass, Permissions),
    /// A bucket made with object lock.
    BucketLock,
}

impl Carried {
    /// Writes what was decided into `headers`, as `profile`'s backend reads it.
    pub(crate) fn onto(self, profile: Profile, headers: &mut HeaderMap) {
        match (profile, self) {
            (Profile::Native, Self::NewVersion(lock, LockSource::Header)) => {
                lock_headers::set_requested(headers, &lock);
            }
            // A default retention is the native backend's own to apply.
            (Profile::Native, Self::NewVersion(..)) => {}
            (Profile::Native, Self::Bypass(bypass, caller)) => {
                lock_headers::set_bypass(headers, bypass, caller);
            }
            (Profile::Native, Self::BucketLock) => {
                headers.insert(
                    lock_headers::BUCKET_LOCK_ENABLED,
                    HeaderValue::from_static("true"),
                );
            }
            (Profile::Gateway | Profile::BucketRetention, Self::NewVersion(lock, _)) => {
                lock_headers::set_metadata(headers, &lock);
            }
            (Profile::Gateway | Profile::BucketRetention, Self::Bypass(..) | Self::BucketLock) => {}
        }
    }
}
