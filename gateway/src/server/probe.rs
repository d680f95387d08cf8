//! The start-up probe: a bucket's configured profile must be backed by the backend before the
//! gateway serves it. A claim the backend does not back is refused at start, not discovered after
//! a ransomware attack.

use std::collections::BTreeMap;

use policy::lock::Profile;

use super::StartError;
use crate::enforce::Gateway;

/// `native` buckets must report object lock; `bucket-retention` buckets must have an OSS WORM
/// policy that is locked or still in its window.
///
/// # Errors
/// `StartError::Probe` naming the bucket whose profile the backend does not back.
pub(super) async fn profiles_hold(
    gateway: &Gateway,
    bucket_profiles: &BTreeMap<String, Profile>,
) -> Result<(), StartError> {
    // A bucket configured `native` must have object lock on the backend: a claim the
    // backend does not back is refused here, not discovered after a ransomware attack.
    for (bucket, profile) in bucket_profiles {
        if *profile == Profile::Native {
            let (lock, _) = gateway
                .ask_native_bucket(bucket)
                .await
                .map_err(|e| StartError::Probe(format!("{bucket}: {e}")))?;
            if !lock.enabled {
                return Err(StartError::Probe(format!(
                    "bucket {bucket} is configured native, but the backend reports no object lock on it"
                )));
            }
            tracing::info!(%bucket, "native profile: the backend reports object lock");
        }
        if *profile == Profile::BucketRetention {
            let worm = gateway
                .refresh_worm(bucket)
                .await
                .map_err(|e| StartError::Probe(format!("{bucket}: {e}")))?
                .ok_or_else(|| {
                    StartError::Probe(format!(
                        "bucket {bucket} is configured bucket-retention, but OSS reports no WORM policy on it"
                    ))
                })?;
            let retention = worm.retention();
            if retention
                .floor(chrono::Utc::now(), gateway.locks.now())
                .is_none()
            {
                return Err(StartError::Probe(format!(
                    "bucket {bucket}: its WORM policy was never locked and has lapsed"
                )));
            }
            tracing::info!(%bucket, state = worm.state.as_str(), period_days = worm.period_days, "bucket-retention profile: OSS reports a WORM policy");
        }
    }
    Ok(())
}
